"""shellctr: a daemonless container engine whose every host change is a shell command."""
