/**
 * The "compare file with HEAD" view: the server's per-region rows as a readable table.
 *
 * What is hard: the server's answer (perfhint.compareWithHead, lsp/features/commands.py) has both
 * numbers and their formatted text; the table uses the server's text so it reads exactly like the
 * hints, and uses the numbers only to sort (largest change first) and to add up Σ Δ per unit. A
 * failure is an answer too (`{"error": ...}`), shown as one line, not a table. The output is
 * Markdown whose table columns are padded, so it is readable both raw in an editor and previewed.
 * No `vscode` import here.
 */

export interface CompareRow {
  key: string;
  name: string;
  kind: string;
  line: number | null;
  metric: string;
  unit: string;
  before: number | null;
  after: number | null;
  delta: number | null;
  percent: number | null;
  status: string; // changed | same | new | removed | no number
  before_text: string | null;
  after_text: string | null;
  delta_text: string | null;
}

export interface CompareResult {
  uri?: string;
  revision?: string;
  reason?: string | null;
  rows?: CompareRow[];
  error?: string;
}

const MINUS = "\u2212";

export function isCompareResult(value: unknown): value is CompareResult {
  return typeof value === "object" && value !== null && ("rows" in value || "error" in value);
}

export function fileName(uri: string | undefined): string {
  if (uri === undefined) return "file";
  const clean = uri.split(/[?#]/)[0];
  try {
    return decodeURIComponent(clean.slice(clean.lastIndexOf("/") + 1)) || uri;
  } catch {
    return clean.slice(clean.lastIndexOf("/") + 1) || uri;
  }
}

/**
 * predict.format_number: 2 significant digits below 10, integers from 10, exponent below 0.001.
 * Python rounds ties to even ("12.5" -> "12"); JavaScript's toFixed rounds them up, hence `fixed`.
 */
export function formatNumber(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (!Number.isFinite(value)) return value > 0 ? "∞" : `${MINUS}∞`;
  const magnitude = Math.abs(value);
  let text: string;
  if (magnitude >= 10) text = fixed(magnitude, 0);
  else if (magnitude >= 1) text = fixed(magnitude, 1);
  else if (magnitude === 0) text = "0";
  else if (magnitude >= 1e-3) text = fixed(magnitude, 1 - Math.floor(Math.log10(magnitude)));
  else text = magnitude.toExponential(1).replace(/e([+-])(\d)$/, (_, sign: string, digit: string) => `e${sign}0${digit}`);
  if (text.includes(".") && !text.includes("e")) text = text.replace(/0+$/, "").replace(/\.$/, "");
  return value < 0 && text !== "0" ? `${MINUS}${text}` : text;
}

/** `toFixed` with ties to even, as Python's format does for exactly representable halves. */
function fixed(value: number, digits: number): string {
  const scale = 10 ** digits;
  const scaled = value * scale;
  const floor = Math.floor(scaled);
  const rest = scaled - floor;
  const rounded = rest > 0.5 ? floor + 1 : rest < 0.5 ? floor : floor % 2 === 0 ? floor : floor + 1;
  return (rounded / scale).toFixed(digits);
}

const MEMORY: [string, number][] = [
  ["GiB", 1024 ** 3],
  ["MiB", 1024 ** 2],
  ["KiB", 1024],
  ["B", 1],
];
const TIME: [string, number][] = [
  ["s", 1],
  ["ms", 1e-3],
  ["µs", 1e-6],
];
const TO_BASE: Record<string, [string, number]> = {
  B: ["bytes", 1], bytes: ["bytes", 1], KiB: ["bytes", 1024], MiB: ["bytes", 1024 ** 2], GiB: ["bytes", 1024 ** 3],
  KB: ["bytes", 1e3], kB: ["bytes", 1e3], MB: ["bytes", 1e6], GB: ["bytes", 1e9],
  s: ["seconds", 1], ms: ["seconds", 1e-3], "µs": ["seconds", 1e-6], us: ["seconds", 1e-6], ns: ["seconds", 1e-9],
};

export function formatQuantity(value: number, unit: string): string {
  const known = TO_BASE[unit];
  if (known === undefined) return `${formatNumber(value)} ${unit}`.trim();
  const [dimension, scale] = known;
  const base = value * scale;
  const magnitude = Math.abs(base);
  const table = dimension === "bytes" ? MEMORY : TIME;
  const floor = dimension === "bytes" ? 1 : 0.1;
  const [shown, shownScale] = table.find(([, s]) => magnitude >= s * floor) ?? table[table.length - 1];
  return `${formatNumber(base / shownScale)} ${shown}`;
}

export function formatDelta(value: number, unit: string): string {
  if (value === 0) {
    const dimension = TO_BASE[unit]?.[0];
    return `±0 ${dimension === "bytes" ? "B" : dimension === "seconds" ? "s" : unit}`.trim();
  }
  return `${value > 0 ? "+" : MINUS}${formatQuantity(Math.abs(value), unit)}`;
}

function percentText(percent: number | null): string {
  if (percent === null || !Number.isFinite(percent)) return "";
  const rounded = Math.abs(percent) >= 10 ? Math.round(percent) : Number(percent.toPrecision(2));
  return `${rounded > 0 ? "+" : rounded < 0 ? MINUS : "±"}${Math.abs(rounded)} %`;
}

function pad(cells: string[][]): string[] {
  const widths = cells[0].map((_, column) => Math.max(...cells.map((row) => [...row[column]].length)));
  return cells.map((row, index) => {
    const line = `| ${row.map((cell, column) => cell + " ".repeat(widths[column] - [...cell].length)).join(" | ")} |`;
    return index === 0 ? `${line}\n|${widths.map((width) => "-".repeat(width + 2)).join("|")}|` : line;
  });
}

export function renderCompare(result: CompareResult): string {
  const name = fileName(result.uri);
  const revision = result.revision ?? "HEAD";
  const title = `# perfhint: ${name} vs ${revision}`;
  if (result.error !== undefined) {
    return `${title}\n\n${result.error}\n`;
  }
  const rows = [...(result.rows ?? [])];
  const lines = [title, ""];
  if (result.reason) {
    lines.push(`No ${revision} version to compare with: ${result.reason}. Every region counts as new.`, "");
  }
  if (rows.length === 0) {
    lines.push("No regions to compare (no functions, kernels or programs with a prediction).");
    return `${lines.join("\n")}\n`;
  }
  // Largest absolute change first; rows without a Δ (new, removed, no number) after, in file order.
  rows.sort((a, b) => {
    const da = a.delta === null ? -1 : Math.abs(a.delta);
    const db = b.delta === null ? -1 : Math.abs(b.delta);
    return db - da || (a.line ?? 1e9) - (b.line ?? 1e9);
  });
  const cells = [["region", "kind", "line", "metric", `before (${revision})`, "after", "Δ", "Δ %", "status"]];
  for (const row of rows) {
    cells.push([
      row.name,
      row.kind.replace(/_/g, " "),
      row.line === null ? "" : String(row.line + 1),
      row.metric,
      row.before_text ?? (row.before === null ? "—" : formatQuantity(row.before, row.unit)),
      row.after_text ?? (row.after === null ? "—" : formatQuantity(row.after, row.unit)),
      row.delta_text ?? (row.delta === null ? "" : formatDelta(row.delta, row.unit)),
      percentText(row.percent),
      row.status,
    ]);
  }
  lines.push(...pad(cells.map((row) => row.map((cell) => cell.replace(/\|/g, "\\|")))));
  const totals = sumDeltas(rows);
  if (totals.length > 0) {
    lines.push("", `Σ Δ: ${totals.join(", ")} (regions present in both versions)`);
  }
  lines.push("", "Predicted by a model, not measured: hover a hint for the band and the assumptions.");
  return `${lines.join("\n")}\n`;
}

/** Σ Δ per metric over rows that have a Δ, formatted in the metric's unit. */
export function sumDeltas(rows: readonly CompareRow[]): string[] {
  const totals = new Map<string, { unit: string; sum: number }>();
  for (const row of rows) {
    if (row.delta === null || !Number.isFinite(row.delta)) continue;
    const entry = totals.get(row.metric) ?? { unit: row.unit, sum: 0 };
    entry.sum += row.delta;
    totals.set(row.metric, entry);
  }
  return [...totals.entries()].map(([metric, { unit, sum }]) => `${metric} ${formatDelta(sum, unit)}`);
}
