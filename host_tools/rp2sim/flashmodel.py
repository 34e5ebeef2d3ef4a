"""What a file operation costs the RP2040: littlefs's block use, and the boot ROM's flash time.

The rp2 port mounts littlefs v2 on the QSPI flash (ports/rp2/modules/_boot.py:
`VfsLfs2(rp2.Flash(), progsize=256)`; extmod/vfs_lfsx.c: 4096-byte blocks, 32-byte reads,
256-byte programs, cache 1024 bytes, files up to 512 bytes stored inline in their directory's
metadata). Every erase and program runs in the boot ROM with interrupts masked and the other
core locked out (ports/rp2/rp2_flash.c, begin_critical_flash_section): for that long the CPU runs
nothing else, not even a hard interrupt handler, while PIO, PWM and the pins carry on.

This model follows littlefs closely enough that some writes erase and some do not, as on the
chip (CALIBRATION.md: 3 of 16 settings saves erased a sector; 37 of 40 history appends did):
- each directory has a metadata log in one block; every commit (a file created, an inline file's
  data, a rename, a remove) appends at least one 256-byte program to it; when the log is full,
  littlefs compacts it into its other block: one erase, the live entries programmed again;
- a file larger than the inline limit lives in blocks of its own: writing it erases a block for
  each 4096 bytes; appending to it erases a new last block and copies the old partial block into
  it (lfs_ctz_extend), which is why nearly every history append erases.

Times (FlashTiming): a 4 KB sector erase 45 ms typical, 400 ms worst; a 256-byte page program
0.7 ms typical, 3 ms worst (Winbond W25Q16JV datasheet, tSE and tPP). The littlefs work in C
around them (reading metadata, CRCs) is charged as ordinary busy CPU time: a save without an
erase takes 8.5-19 ms on the port, of which 2.1 ms in the ROM.
"""

from __future__ import annotations

from dataclasses import dataclass

BLOCK = 4096
PROG = 256
INLINE_MAX = 512
_COMMIT_HEADER = 16  # revision, CRC and tags of one commit
_ENTRY = 12  # an entry's tags (struct, name) besides its name and inline data
_CTZ_PTR = 8  # a block-list file's (head, size) in its entry


@dataclass
class FlashTiming:
    """How long the flash chip takes, in microseconds (W25Q16JV: tSE, tPP)."""

    erase_us: int = 45_000
    page_us: int = 700
    # littlefs work in C, per operation (microseconds of busy CPU, interrupts on)
    open_us: int = 2500
    close_us: int = 2000
    rename_us: int = 3000
    remove_us: int = 2000
    stat_us: int = 800
    read_us: int = 300
    read_byte_us: float = 0.4
    write_byte_us: float = 0.3

    @classmethod
    def worst(cls) -> FlashTiming:
        return cls(erase_us=400_000, page_us=3_000)


def _pages(n: int) -> int:
    return (n + PROG - 1) // PROG


class LittleFsModel:
    """littlefs's block use for a flat tree of files: which operations erase and program."""

    def __init__(self):
        self.meta_used: dict[str, int] = {}  # bytes used in each directory's active log block
        self.sizes: dict[str, int] = {}  # file size as littlefs stored it at the last sync

    def live(self, d: str, files: dict[str, bytes]) -> int:
        """Bytes a freshly compacted metadata block of directory d holds."""
        n = _COMMIT_HEADER
        prefix = d.rstrip("/") + "/"
        for p, data in files.items():
            if p.startswith(prefix) and "/" not in p[len(prefix) :]:
                name = len(p) - len(prefix)
                n += _ENTRY + name + (len(data) if len(data) <= INLINE_MAX else _CTZ_PTR)
        return n

    def commit(self, d: str, nbytes: int, files: dict[str, bytes]) -> tuple[int, int]:
        """(erases, pages) for one metadata commit of nbytes in directory d."""
        size = _pages(_COMMIT_HEADER + nbytes) * PROG
        used = self.meta_used.get(d)
        if used is None:
            used = _pages(self.live(d, files)) * PROG
        erases = 0
        pages = _pages(size)
        if used + size > BLOCK:
            # Compaction: the other block of the pair is erased and the live entries written.
            live = _pages(self.live(d, files)) * PROG
            erases = 1
            pages += live // PROG
            used = live
        self.meta_used[d] = used + size
        return erases, pages

    def data(self, old: int, new: int, append: bool) -> tuple[int, int]:
        """(erases, pages) for a file's own blocks when it goes from old to new bytes."""
        if new <= INLINE_MAX:
            return 0, 0
        if append and old > INLINE_MAX:
            # lfs_ctz_extend: a new last block, the old partial block copied into it
            tail = old % BLOCK
            grow = new - old
            erases = 1 + (tail + grow - 1) // BLOCK if tail + grow > 0 else 1
            return erases, _pages(tail + grow)
        return (new + BLOCK - 1) // BLOCK, _pages(new)
