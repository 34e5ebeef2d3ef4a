// Run Python code on MicroPython's own VM (the WebAssembly port, from npm) with files copied
// onto its filesystem. Used by host_tools/mpvm/__init__.py; one job per process:
//
//   node host_tools/mpvm/run.mjs < job.json
//
// job: {"files": [[vm_path, host_path], ...], "code": ["python source", ...], "heap_kb": 1024,
//       "romfs": host path of a ROMFS image (optional)}
// The code chunks run one after the other in the same VM (one `__main__`). Garbage made by a
// chunk is only reclaimed by gc.collect() in a later chunk: this port's collector cannot free
// what the running chunk's WebAssembly stack may still hold. The code's stdout goes to stdout
// line by line. An uncaught Python exception is printed to stderr, the remaining chunks are
// skipped and the exit status is 1. The VM's POSIX filesystem is Emscripten's: its errno values
// are Emscripten's (ENOENT is 44, not 2).
import fs from "node:fs";
import { loadMicroPython, writeFile } from "./vm.mjs";

const job = JSON.parse(fs.readFileSync(0, "utf8"));
const options = {
  heapsize: (job.heap_kb || 1024) * 1024,
  stdout: (line) => process.stdout.write(line + "\n"),
  stderr: (line) => process.stderr.write(line + "\n"),
};
if (job.romfs) {
  // A ROMFS image (job.romfs: host path), mounted read-only at /rom: .mpy files there run in
  // place, their bytecode is not copied into the heap.
  options.romfs = new Uint8Array(fs.readFileSync(job.romfs));
}
const mp = await loadMicroPython(options);

for (const [vmPath, hostPath] of job.files || []) {
  writeFile(mp, vmPath, fs.readFileSync(hostPath));
}

const chunks = typeof job.code === "string" ? [job.code] : job.code;
for (const chunk of chunks) {
  try {
    mp.runPython(chunk);
  } catch (e) {
    process.stderr.write(String(e && e.message ? e.message : e) + "\n");
    process.exitCode = 1;
    break;
  }
}
