// The compare-with-HEAD table from the server's answer.
import assert from "node:assert/strict";
import { test } from "node:test";

import { formatDelta, formatNumber, formatQuantity, renderCompare, type CompareRow } from "../src/compare";

function row(overrides: Partial<CompareRow>): CompareRow {
  return {
    key: "function:f", name: "f", kind: "function", line: 3, metric: "peak_memory", unit: "MiB",
    before: 10, after: 13.1, delta: 3.1, percent: 31, status: "changed",
    before_text: "10 MiB", after_text: "13 MiB", delta_text: "+3.1 MiB", ...overrides,
  };
}

test("a table with the largest change first, then new and removed regions", () => {
  const text = renderCompare({
    uri: "file:///ws/kernels.py",
    revision: "HEAD",
    rows: [
      row({ key: "function:small", name: "small", delta: 0.5, delta_text: "+0.5 MiB", percent: 5 }),
      row({}),
      row({ key: "triton_kernel:add", name: "add", kind: "triton_kernel", line: 20, metric: "gpu_latency", unit: "ms", before: null, after: 0.97, delta: null, percent: null, status: "new", before_text: null, after_text: "0.97 ms", delta_text: null }),
      row({ key: "function:gone", name: "gone", line: null, after: null, delta: null, percent: null, status: "removed", after_text: null, delta_text: null }),
    ],
  });
  assert.equal(text, [
    "# perfhint: kernels.py vs HEAD",
    "",
    "| region | kind          | line | metric      | before (HEAD) | after   | Δ        | Δ %   | status  |",
    "|--------|---------------|------|-------------|---------------|---------|----------|-------|---------|",
    "| f      | function      | 4    | peak_memory | 10 MiB        | 13 MiB  | +3.1 MiB | +31 % | changed |",
    "| small  | function      | 4    | peak_memory | 10 MiB        | 13 MiB  | +0.5 MiB | +5 %  | changed |",
    "| add    | triton kernel | 21   | gpu_latency | —             | 0.97 ms |          |       | new     |",
    "| gone   | function      |      | peak_memory | 10 MiB        | —       |          |       | removed |",
    "",
    "Σ Δ: peak_memory +3.6 MiB (regions present in both versions)",
    "",
    "Predicted by a model, not measured: hover a hint for the band and the assumptions.",
    "",
  ].join("\n"));
});

test("an error is one line, not a table", () => {
  assert.equal(renderCompare({ uri: "file:///ws/a.py", error: "the document is not open in the editor" }),
    "# perfhint: a.py vs HEAD\n\nthe document is not open in the editor\n");
});

test("a file new since HEAD says so", () => {
  const text = renderCompare({ uri: "file:///ws/a.py", revision: "HEAD", reason: "the file is new since HEAD", rows: [] });
  assert.match(text, /No HEAD version to compare with: the file is new since HEAD\./);
});

test("number formatting follows the server's (predict.py)", () => {
  const cases: [number, string][] = [[12.5, "12"], [3.14, "3.1"], [0.21, "0.21"], [0.0001234, "1.2e-04"], [0, "0"], [-3.14, "−3.1"], [10, "10"], [1.0, "1"]];
  for (const [value, expected] of cases) assert.equal(formatNumber(value), expected, String(value));
  assert.equal(formatQuantity(12.5 * 2 ** 20, "B"), "12 MiB");
  assert.equal(formatQuantity(2.1e-4, "s"), "0.21 ms");
  assert.equal(formatQuantity(0.5, "MiB"), "512 KiB");
  assert.equal(formatDelta(-0.5, "MiB"), "−512 KiB");
  assert.equal(formatDelta(0, "MiB"), "±0 B");
  assert.equal(formatQuantity(3, ""), "3");
});
