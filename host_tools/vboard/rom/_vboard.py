# Run by board.mjs on every (re)boot of the virtual board, before boot.py: the board's flash at /
# (a VFS kept by the host, with MicroPython's errno values), the simulated rp2 modules read-only
# at /rom, and the interpreter made to look like the rp2 port (sys.platform "rp2", the rp2
# port's modules instead of the WebAssembly port's preloaded ones).
def _vboard_boot():
    import sys

    import vfs

    vfs.mount(vfs.VfsPosix("/vbrom"), "/rom")
    sys.path.clear()
    sys.path.extend(["", "/rom", ".frozen", "/lib"])
    import _vbinit  # noqa: F401 - from /rom


_vboard_boot()
del _vboard_boot


def _vboard_setup(machine_name):
    __import__("_vbinit").setup(machine_name)


def _vboard_run_file(name):
    return __import__("_vbinit").run_file(name)


def _vboard_poll():
    __import__("_vbinit").poll()
