"""`warrant demo` and its world: the embedded scenario, the namespace lab topology and
the scripted run."""
