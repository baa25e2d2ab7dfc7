"""What keeps clients current: the shared status watcher, shared log followers, shared reads."""
