"""The sans-I/O protocol core: wire codec, credentials, admission, sessions, hop chains.

Pure functions and state machines over bytes and keys: no sockets, no clocks (time is
a parameter), no globals.  The I/O shells (`warrant.shells`), the kernel datapath
(`warrant.datapath`) and the CLI (`warrant.cli`) are built on it.
"""
