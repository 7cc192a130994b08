"""Generated protobuf modules for Hubble's flow and observer APIs and Warrant's flow extension (see README.md)."""
