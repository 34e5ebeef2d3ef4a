// MicroPython's WebAssembly VM from npm, and putting files on its filesystem: shared by run.mjs
// (tests and benchmarks on the VM) and ../vboard/board.mjs (the virtual board).
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.join(
  here, "..", "..", "node_modules", "@micropython", "micropython-webassembly-pyscript",
  "micropython.mjs",
);
export const { loadMicroPython } = await import(pkg);

// Write `data` at `vmPath` on the VM's filesystem, making the directories on the way.
export function writeFile(mp, vmPath, data) {
  let cur = "";
  for (const part of path.posix.dirname(vmPath).split("/").filter(Boolean)) {
    cur += "/" + part;
    try {
      mp.FS.mkdir(cur);
    } catch (e) {
      // already there
    }
  }
  mp.FS.writeFile(vmPath, data);
}
