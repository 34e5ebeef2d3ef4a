// The virtual board: MicroPython's own VM (the WebAssembly port, from npm) behaving as a
// Raspberry Pi Pico on a serial link. Started by host_tools/vboard (`stimctl vboard`), which
// puts a pseudo-terminal in front of it:
//
//   node host_tools/vboard/board.mjs CONFIG.json     (stdin/stdout: the serial link)
//
// CONFIG: {"flash": host file holding the board's filesystem, "rom": [[name, host_path], ...]
//          (the simulated rp2 modules, read-only at /rom), "machine": sys.implementation._machine}
//
// The VM runs like the board's CPU: synchronously. boot.py, then main.py (the firmware, whose
// asyncio loop waits in `time.sleep_ms` / `select.poll`), then the REPL. The link is read by a
// worker thread into a shared ring, so the VM sees input while it runs. As the rp2 port's USB
// CDC driver (shared/tinyusb/mp_usbd_cdc.c, tud_cdc_rx_cb) does, every byte goes into one
// receive queue (rxq, the port's stdin ring buffer), except a Ctrl-C arriving while Python code
// runs with the interrupt character enabled: that empties the queue and raises
// KeyboardInterrupt (checked when the code waits or prints). Whoever reads stdin next takes the
// queue: the running program through `sys.stdin` / `sys.stdin.buffer` (rom/_vbsys.py, pollable
// by rom/select.py, so the firmware's asyncio StreamReader gets the host's command lines), or
// the REPL once no program runs.
//
// This 1.29 build has no Asyncify, so Python cannot wait for the JS event loop: the port's own
// asyncio (which runs tasks from JS timers and has no asyncio.run) is replaced by MicroPython's
// standard asyncio, which blocks in asyncio.run exactly as on the board.
//
// REPL: the port's event-driven REPL (friendly, paste and raw mode, as pyexec.c). Raw-paste mode
// (Ctrl-E A Ctrl-A, which the rp2 port supports and mpremote uses) is done here, with the
// port's flow control, because the WebAssembly port's event-driven REPL does not read the code.
// Soft reset (Ctrl-D at an empty prompt, or SystemExit) starts a fresh VM, as the board's soft
// reset clears the heap, and runs boot.py (and main.py in the friendly REPL).
// machine.reset() is a hard reset: a fresh VM in the friendly REPL, boot.py and main.py.
import fs from "node:fs";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { fileURLToPath } from "node:url";
import { loadMicroPython, writeFile } from "../mpvm/vm.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const cfg = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));

function diag(msg) {
  try {
    fs.writeSync(2, "vboard: " + msg + "\n");
  } catch (e) {
    // stderr gone: nothing to tell
  }
}

// ---- the link: input ring filled by a worker, output written straight to fd 1 -------------
const RING = 1 << 16;
const sab = new SharedArrayBuffer(16 + RING);
const ctl = new Int32Array(sab, 0, 4); // [0] bytes written (total), [1] bytes read, [2] eof
const ring = new Uint8Array(sab, 16);
const worker = new Worker(
  `
  const { workerData } = require("node:worker_threads");
  const fs = require("node:fs");
  const ctl = new Int32Array(workerData, 0, 4);
  const ring = new Uint8Array(workerData, 16);
  const RING = ring.length;
  const buf = Buffer.alloc(4096);
  for (;;) {
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === "EAGAIN") { Atomics.wait(ctl, 3, 0, 5); continue; }
      n = 0;
    }
    if (n === 0) { Atomics.store(ctl, 2, 1); Atomics.add(ctl, 0, 0); Atomics.notify(ctl, 0); break; }
    for (let i = 0; i < n; i++) {
      let w = Atomics.load(ctl, 0);
      while (w - Atomics.load(ctl, 1) >= RING) Atomics.wait(ctl, 1, Atomics.load(ctl, 1), 20);
      ring[w % RING] = buf[i];
      Atomics.store(ctl, 0, w + 1);
    }
    Atomics.notify(ctl, 0);
  }
  `,
  { eval: true, workerData: sab },
);
worker.unref();

const rxq = []; // bytes taken from the ring, waiting for the REPL
let vm = null; // the running MicroPython instance
let interrupted = false; // a KeyboardInterrupt was scheduled since the last wait

function intChar() {
  return vm ? vm._module._mp_hal_get_interrupt_char() : -1;
}

// Move what the link delivered into rxq; a Ctrl-C while code runs with the interrupt character
// enabled schedules KeyboardInterrupt instead (and is not queued), as the rp2 port does.
function pump() {
  let r = Atomics.load(ctl, 1);
  const w = Atomics.load(ctl, 0);
  if (r === w) return;
  const ic = intChar();
  for (; r !== w; r++) {
    const c = ring[r % RING];
    if (c === ic && ic >= 0) {
      rxq.length = 0; // the port clears its stdin ring buffer, then interrupts
      vm._module._mp_sched_keyboard_interrupt();
      interrupted = true;
    } else {
      rxq.push(c);
    }
  }
  Atomics.store(ctl, 1, r);
  Atomics.notify(ctl, 1);
  if (Atomics.load(ctl, 2)) shutdown(0);
}

// Block up to ms for input (or Ctrl-C). Returns true if interrupted.
function waitInput(ms) {
  flush();
  const w = Atomics.load(ctl, 0);
  if (w === Atomics.load(ctl, 1) && !Atomics.load(ctl, 2)) Atomics.wait(ctl, 0, w, ms);
  pump();
  if (Atomics.load(ctl, 2)) shutdown(0);
  return interrupted;
}

let out = [];
let prevOut = 0;
let mute = 0; // drop output (the port's own banner, the "OK" of a raw-paste command)
function putc(c) {
  if (mute > 0) {
    mute--;
    return;
  }
  if (c === 10 && prevOut !== 13) out.push(13); // the board's stdout sends \r\n
  out.push(c);
  prevOut = c;
  if (out.length >= 1024) {
    flush();
    pump();
  }
}
function send(str) {
  for (const c of Buffer.from(str, "latin1")) putc(c);
}
function flush() {
  if (!out.length) return;
  const buf = Buffer.from(out);
  out = [];
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(1, buf, off);
    } catch (e) {
      if (e.code === "EAGAIN") continue;
      shutdown(0); // the link is gone
    }
  }
}

function shutdown(code) {
  flush();
  process.exit(code);
}

// ---- the board's flash: a filesystem kept in a host file, served to the VM's VFS ------------
// Entries: path -> Uint8Array (file) or null (directory). Written to the host file (atomically,
// by rename) after every change the VM commits: a file on close, mkdir, remove, rename. A
// power cut (the process killed) leaves the last committed state, as littlefs does.
const FLASH_BYTES = 1408 * 1024; // the rp2 port's filesystem on a 2 MB Pico
const BLOCK = 4096;
const flash = new Map([["", null]]);
function loadFlash() {
  let doc = null;
  try {
    doc = JSON.parse(fs.readFileSync(cfg.flash, "utf8"));
  } catch (e) {
    return; // a new board: empty flash
  }
  for (const d of doc.dirs || []) flash.set(d, null);
  for (const [p, b64] of Object.entries(doc.files || {})) flash.set(p, Buffer.from(b64, "base64"));
}
function saveFlash() {
  const doc = { format: "stimctl-vboard-flash-1", dirs: [], files: {} };
  for (const [p, v] of [...flash.entries()].sort()) {
    if (p === "") continue;
    if (v === null) doc.dirs.push(p);
    else doc.files[p] = Buffer.from(v).toString("base64");
  }
  const tmp = cfg.flash + ".tmp";
  fs.writeFileSync(tmp, JSON.stringify(doc));
  fs.renameSync(tmp, cfg.flash);
}
function usedBlocks() {
  let n = 2; // superblocks
  for (const v of flash.values()) n += v === null ? 1 : Math.max(1, Math.ceil(v.length / BLOCK));
  return n;
}
function parent(p) {
  return p.slice(0, p.lastIndexOf("/"));
}
const ENOENT = 2, EEXIST = 17, ENOTDIR = 20, EISDIR = 21, EINVAL = 22, ENOSPC = 28;
const ENOTEMPTY = 39;
function children(p) {
  const pre = p + "/";
  return [...flash.keys()].filter((k) => k.startsWith(pre) && !k.slice(pre.length).includes("/"));
}
// Each returns 0 or an errno (MicroPython's numbers); the VFS raises OSError with it.
const flashApi = {
  stat(p) {
    if (!flash.has(p)) return "";
    const v = flash.get(p);
    return v === null ? "d 0" : "f " + v.length;
  },
  listdir(p) {
    if (!flash.has(p)) return null;
    if (flash.get(p) !== null) return null;
    return children(p)
      .map((k) => k.slice(p.length + 1) + "\x00" + (flash.get(k) === null ? "d" : "f") + "\x00" +
        (flash.get(k) === null ? 0 : flash.get(k).length))
      .join("\n");
  },
  read(p) {
    const v = flash.get(p);
    return v === undefined || v === null ? null : Buffer.from(v).toString("hex");
  },
  write(p, data) {
    if (flash.get(p) === null) return EISDIR;
    if (!flash.has(parent(p)) || flash.get(parent(p)) !== null) return ENOENT;
    const u = Uint8Array.from(Buffer.from(data, "hex"));
    const old = flash.get(p);
    const grow = Math.ceil(u.length / BLOCK) - (old ? Math.ceil(old.length / BLOCK) : -1);
    if (usedBlocks() + grow > FLASH_BYTES / BLOCK) return ENOSPC;
    flash.set(p, u);
    saveFlash();
    return 0;
  },
  mkdir(p) {
    if (flash.has(p)) return EEXIST;
    if (!flash.has(parent(p)) || flash.get(parent(p)) !== null) return ENOENT;
    if (usedBlocks() + 1 > FLASH_BYTES / BLOCK) return ENOSPC;
    flash.set(p, null);
    saveFlash();
    return 0;
  },
  remove(p, dir) {
    if (!flash.has(p) || p === "") return ENOENT;
    const isDir = flash.get(p) === null;
    if (dir && !isDir) return ENOTDIR;
    if (!dir && isDir) return EISDIR;
    if (isDir && children(p).length) return ENOTEMPTY;
    flash.delete(p);
    saveFlash();
    return 0;
  },
  rename(a, b) {
    if (!flash.has(a) || a === "") return ENOENT;
    if (!flash.has(parent(b)) || flash.get(parent(b)) !== null) return ENOENT;
    if (b === a) return 0;
    if (b.startsWith(a + "/")) return EINVAL;
    const src = flash.get(a);
    if (flash.has(b)) {
      const dst = flash.get(b);
      if (dst === null && src !== null) return EISDIR;
      if (dst !== null && src === null) return ENOTDIR;
      if (dst === null && children(b).length) return ENOTEMPTY;
    }
    // One commit, as littlefs renames atomically (a directory moves with everything in it).
    const moved = [...flash.entries()].filter(([k]) => k === a || k.startsWith(a + "/"));
    for (const [k] of moved) flash.delete(k);
    flash.delete(b);
    for (const [k, v] of moved) flash.set(b + k.slice(a.length), v);
    saveFlash();
    return 0;
  },
  statvfs() {
    return [BLOCK, FLASH_BYTES / BLOCK, FLASH_BYTES / BLOCK - usedBlocks()];
  },
};

// ---- JS services for the ROM modules -------------------------------------------------------
const T0 = performance.now();
let hardReset = false;
const vbApi = {
  now_ms: () => performance.now() - T0, // float: ms since power-on
  epoch_s: () => Math.floor(Date.now() / 1000),
  // Sleep up to ms of real time; true (at once) if a Ctrl-C scheduled KeyboardInterrupt. With
  // rx, also return (false) as soon as the receive queue holds a byte (stdin readable).
  wait(ms, rx) {
    const end = performance.now() + ms;
    interrupted = false;
    for (;;) {
      pump();
      if (interrupted) return true;
      if (rx && rxq.length) return false;
      const left = end - performance.now();
      if (left <= 0) return false;
      waitInput(Math.min(left, 50));
      if (interrupted) return true;
    }
  },
  // The receive queue, as the firmware's sys.stdin sees it: bytes waiting, and up to n of
  // them taken (hex, as the flash API passes bytes).
  rx_any() {
    pump();
    return rxq.length;
  },
  rx_take(n) {
    pump();
    return Buffer.from(rxq.splice(0, Math.max(0, n))).toString("hex");
  },
  hard_reset() {
    hardReset = true;
  },
  reset_cause: () => resetCause,
};

// ---- the board's life: power-on, boot, REPL, resets ----------------------------------------
const rom = cfg.rom.map(([name, host]) => [name, fs.readFileSync(host)]);
let resetCause = 1; // machine.PWRON_RESET
let rawMode = false; // the REPL mode survives a soft reset, as on the board

async function newVm() {
  const m = await loadMicroPython({
    heapsize: 256 * 1024,
    linebuffer: false,
    stdout: (b) => putc(b[0]),
    stderr: (b) => putc(b[0]),
  });
  for (const [name, data] of rom) writeFile(m, "/vbrom/" + name, data);
  m.registerJsModule("_vb", vbApi);
  m.registerJsModule("_vbflash", flashApi);
  return m;
}

function py(code) {
  try {
    return vm.runPython(code);
  } catch (e) {
    send(String(e && e.message ? e.message : e) + "\n");
    return null;
  }
}

const BANNER =
  "MicroPython v1.29.0 on 2025-01-01; " + (cfg.machine || "Raspberry Pi Pico with RP2040") +
  "\r\nType \"help()\" for more information.\r\n";

async function boot() {
  vm = await newVm();
  hardReset = false;
  // Mount the flash at /, the ROM at /rom, install the rp2 modules (see rom/_vboard.py).
  vm.runPython(fs.readFileSync(path.join(here, "rom", "_vboard.py"), "utf8"));
  vm.runPython("_vboard_setup(" + JSON.stringify(cfg.machine || "") + ")");
  let ret = py("_vboard_run_file('boot.py')");
  if (!hardReset && ret !== 2 && !rawMode) ret = py("_vboard_run_file('main.py')");
  flush();
  if (hardReset || ret === 2) return ret === 2 && !hardReset ? "soft" : "hard";
  mute = 1 << 30;
  vm.replInit();
  mute = 0;
  if (rawMode) {
    mute = 2; // the "\r\n" the friendly REPL sends before switching
    vm.replProcessChar(1); // Ctrl-A: "raw REPL; CTRL-B to exit\r\n>"
  } else {
    send(BANNER + ">>> ");
  }
  return null;
}

const pollTimers = () => py("_vboard_poll()");

// Raw-paste mode, as shared/runtime/pyexec.c does it (mp_reader_new_stdin, window half of
// MICROPY_REPL_STDIN_BUFFER_MAX = 256): "R\x01", the window size (2 bytes, little-endian) and
// \x01 for a second window; then \x01 each time a window's bytes were read; Ctrl-D (or Ctrl-C)
// ends the code and is acknowledged with \x04. The host sends at the pace the board reads (no
// fixed 10 ms pauses as in the plain raw REPL). The code then runs as a raw-REPL command whose
// "OK" is not sent: the output, \x04, any error, \x04 and the prompt follow as in raw mode.
const PASTE_WINDOW = 128;
function rawPaste() {
  send("R\x01" + String.fromCharCode(PASTE_WINDOW & 0xff, PASTE_WINDOW >> 8, 1));
  flush();
  const code = [];
  let remain = PASTE_WINDOW;
  for (;;) {
    if (!rxq.length) {
      waitInput(20);
      continue;
    }
    const b = rxq.shift();
    if (b === 3 || b === 4) {
      send("\x04");
      flush();
      if (b === 3) {
        // pyexec raises KeyboardInterrupt from the reader: reported as a raw-REPL error
        send("\x04KeyboardInterrupt: \r\n\x04>");
        flush();
        return;
      }
      break;
    }
    code.push(b);
    if (--remain === 0) {
      send("\x01");
      flush();
      remain = PASTE_WINDOW;
    }
  }
  // The raw REPL runs it: its line buffer takes the code, Ctrl-D executes it.
  mute = 2; // "OK": raw-paste mode does not send it
  const after = rxq.splice(0, rxq.length); // what the host sent since: after the command
  for (const b of code) rxq.push(b);
  rxq.push(4);
  for (const b of after) rxq.push(b);
}
let paste = false;

async function run() {
  loadFlash();
  for (;;) {
    let reset = await boot();
    let lastPoll = performance.now();
    while (!reset) {
      if (!rxq.length) {
        waitInput(20);
        if (performance.now() - lastPoll >= 20) {
          pollTimers();
          lastPoll = performance.now();
          if (hardReset) reset = "hard";
        }
        continue;
      }
      const c = rxq.shift();
      if (c === 5 && !paste) {
        // Raw-paste request: wait briefly for the rest of "\x05A\x01".
        const t = performance.now();
        while (rxq.length < 2 && performance.now() - t < 100) waitInput(10);
        if (rxq[0] === 0x41 && rxq[1] === 1) {
          rxq.splice(0, 2);
          if (rawMode) {
            rawPaste();
          } else {
            send("R\x00"); // only the raw REPL takes it: the host falls back
            flush();
          }
          continue;
        }
      }
      if (rawMode) {
        if (c === 2) rawMode = false;
      } else if (paste) {
        if (c === 3 || c === 4) paste = false;
      } else if (c === 1) {
        rawMode = true;
      } else if (c === 5) {
        paste = true;
      }
      let r = 0;
      try {
        r = vm.replProcessChar(c);
      } catch (e) {
        send(String(e && e.message ? e.message : e) + "\n");
      }
      flush();
      if (hardReset) reset = "hard";
      else if (r) reset = "soft";
    }
    if (reset === "hard") {
      rawMode = false;
      paste = false;
      resetCause = 3; // machine.reset() goes through the watchdog on rp2: WDT_RESET
    } else {
      send("MPY: soft reboot\r\n");
    }
    flush();
    vm = null;
  }
}

process.on("SIGTERM", () => shutdown(0));
run().catch((e) => {
  diag("crashed: " + (e && e.stack ? e.stack : e));
  shutdown(1);
});
