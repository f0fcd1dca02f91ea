/**
 * Optional end-of-line decorations coloured by size (Import Cost style): the colour decision.
 *
 * What is hard: the numbers come from the server as inlay hint labels (the portable surface every
 * editor gets), so the colour is decided from the label text, not from a second channel that could
 * disagree with it. A label is `≈ 12 MiB`, `≈? 0.97 ms @H100`, `≈ 12 MiB +3.1 MiB`, `≈ 12 MiB …`
 * (stale), or a state ("perfhint: calculating…"). Only the first quantity (the median) sets the
 * colour; a stale or unreadable label gets the neutral colour, so colour always means "a current
 * number of this size". Thresholds are per unit dimension and fixed here: they are about what a
 * person should look at first, not about correctness. No `vscode` import here.
 */

export type Level = "small" | "medium" | "large" | "neutral";

export const BYTES = "bytes";
export const SECONDS = "seconds";

const SCALE: Record<string, [string, number]> = {
  B: [BYTES, 1],
  KiB: [BYTES, 1024],
  MiB: [BYTES, 1024 ** 2],
  GiB: [BYTES, 1024 ** 3],
  TiB: [BYTES, 1024 ** 4],
  "µs": [SECONDS, 1e-6],
  ms: [SECONDS, 1e-3],
  s: [SECONDS, 1],
};

/** Upper bounds (base units) of "small" and "medium"; anything above is "large". */
export const THRESHOLDS: Record<string, [number, number]> = {
  [BYTES]: [64 * 1024 ** 2, 1024 ** 3], // < 64 MiB small, < 1 GiB medium
  [SECONDS]: [100e-6, 1e-3], // < 0.1 ms small, < 1 ms medium (one GPU kernel launch)
};

/** Colours for dark and light themes; neutral follows the theme's inlay-hint colour. */
export const COLOURS: Record<Exclude<Level, "neutral">, { dark: string; light: string }> = {
  small: { dark: "#7cc36e", light: "#2e7d32" },
  medium: { dark: "#e5c07b", light: "#a66f00" },
  large: { dark: "#e06c75", light: "#c62828" },
};

const QUANTITY = /^≈\??\s*([-−+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(TiB|GiB|MiB|KiB|B|µs|ms|s)(?=\s|$)/u;

export interface Quantity {
  value: number; // base units (bytes or seconds)
  dimension: string;
}

export function parseLabel(label: string): Quantity | undefined {
  const match = QUANTITY.exec(label.trim());
  if (match === null) {
    return undefined;
  }
  const [dimension, scale] = SCALE[match[2]];
  return { value: Number(match[1].replace("−", "-")) * scale, dimension };
}

export function level(label: string): Level {
  if (label.includes("…")) {
    return "neutral"; // stale: an older text's number
  }
  const quantity = parseLabel(label);
  if (quantity === undefined || !Number.isFinite(quantity.value)) {
    return "neutral";
  }
  const [small, medium] = THRESHOLDS[quantity.dimension];
  const magnitude = Math.abs(quantity.value); // a test model's random weights can decode negatives
  return magnitude < small ? "small" : magnitude < medium ? "medium" : "large";
}

/** Flatten an inlay hint label (a string or label parts) to its text. */
export function labelText(label: string | readonly { value: string }[]): string {
  return typeof label === "string" ? label : label.map((part) => part.value).join("");
}
