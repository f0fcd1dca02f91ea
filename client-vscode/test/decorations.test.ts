// Decoration colours from the hint label, Import Cost style.
import assert from "node:assert/strict";
import { test } from "node:test";

import { labelText, level, parseLabel } from "../src/decorations";

function check(label: string, expected: string): void {
  assert.equal(level(label), expected, label);
}

test("memory: < 64 MiB small, < 1 GiB medium, else large", () => {
  check("≈ 12 MiB", "small");
  check("≈ 512 KiB", "small");
  check("≈ 64 MiB", "medium");
  check("≈ 980 MiB +3.1 MiB", "medium");
  check("≈ 1.5 GiB", "large");
  check("≈? 2 GiB", "large");
});

test("latency: < 0.1 ms small, < 1 ms medium, else large", () => {
  check("≈ 12 µs @H100", "small");
  check("≈ 0.21 ms @H100", "medium");
  check("≈ 0.97 ms @H100 ✂", "medium");
  check("≈ 3.2 s @A100", "large");
});

test("stale numbers, states and unreadable labels are neutral", () => {
  check("≈ 12 MiB …", "neutral");
  check("perfhint: calculating…", "neutral");
  check("perfhint: prediction failed, see Output > perfhint", "neutral");
  check("≈ 0.57", "neutral"); // a metric without a unit
});

test("negative numbers (a test model's random weights) are coloured by magnitude", () => {
  check("≈? −2 GiB", "large");
  assert.deepEqual(parseLabel("≈? −12 B"), { value: -12, dimension: "bytes" });
});

test("label parts are joined", () => {
  assert.equal(labelText([{ value: "≈ 12 " }, { value: "MiB" }]), "≈ 12 MiB");
});
