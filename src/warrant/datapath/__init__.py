"""The kernel datapath: eBPF programs in bpf/, loaded and driven from Python.

Modules mirror the C headers they talk to:

    build.py      compile bpf/*.c into build/ (clang -target bpf)
    libbpf.py     a small ctypes binding to libbpf.so.1
    loader.py     load, pin under /sys/fs/bpf/warrant, attach; install sessions
    wire.py       Ethernet/IPv4/UDP frames around Warrant packets (tests, bench)
    reference.py  the kernel-visible verdict computed by the Python reference
"""
