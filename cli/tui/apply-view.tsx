/** The live apply view (Ink): a row per change, a progress line per host, and totals. Renders props only. */
import { Box, Static, Text } from "ink";
import Spinner from "ink-spinner";
import type { ReactNode } from "react";
import { countRows, hostProgress, rowElapsedMs, visibleRows, type ApplyModel, type ApplyRow, type Counts } from "./apply-model.js";
import { doing, done, formatElapsed, stepLabel } from "./format.js";

/** What the apply view shows. */
export interface ApplyViewProps {
  model: ApplyModel;
  /** Reporter clock now, and when the apply began (same clock). */
  nowMs: number;
  startedMs: number;
  /** Change rows that fit; beyond it finished rows collapse into counts. @default 20 */
  maxRows?: number;
  /** @default true */
  color?: boolean;
  /** Animated spinners on running rows (off for still frames). @default true */
  spinner?: boolean;
  /** Lines printed once above the live area (notes such as "interrupt received"). */
  notes?: readonly string[];
}

type Tone = "green" | "red" | "yellow" | "gray" | "cyan";

const ROW_LABELS: Record<string, string> = { create: "+ create", delete: "- destroy", take: "~ take", return: "~ return" };

/** The apply view. */
export function ApplyView(props: ApplyViewProps): ReactNode {
  const { model, nowMs, startedMs, maxRows = 20, color = true, spinner = true, notes = [] } = props;
  const tone = (t: Tone) => (color ? { color: t } : {});
  const { rows, hidden } = visibleRows(model, maxRows);
  const addressWidth = Math.min(48, Math.max(8, ...model.rows.map((r) => r.address.length))) + 2;
  const hostWidth = Math.max(4, ...model.rows.map((r) => r.host.length));
  const adds = model.rows.filter((r) => r.action === "create").length;
  const destroys = model.rows.filter((r) => r.action === "delete").length;
  const total = countRows(model.rows);
  return (
    <Box flexDirection="column">
      <Static items={notes.map((text, i) => ({ text, key: `${i}` }))}>{(n) => <Text key={n.key}>{n.text}</Text>}</Static>
      <Text bold>
        Applying {plural(total.total, "change")}: {adds} to add, {total.total - adds - destroys > 0 ? `${total.total - adds - destroys} to change, ` : ""}{destroys} to destroy
      </Text>
      {rows.map((r) => (
        <Row key={r.address} row={r} nowMs={nowMs} addressWidth={addressWidth} hostWidth={hostWidth} tone={tone} spinner={spinner} />
      ))}
      {hidden.total > 0 && <Text {...tone("gray")}>  … not shown: {countsText(hidden)}</Text>}
      <Box flexDirection="column" marginTop={1}>
        {hostProgress(model).map(({ host, counts }) => (
          <HostLine key={host} host={host} counts={counts} hostWidth={hostWidth} tone={tone} />
        ))}
        <Text>
          {"  "}
          <Text bold>
            {total.done + total.failed}/{total.total} finished
          </Text>
          {` · ${total.running} running · ${total.waiting} waiting · `}
          <Text {...(total.failed > 0 ? tone("red") : {})}>{total.failed} failed</Text>
          {"  "}
          <Text {...tone("gray")}>{formatElapsed(nowMs - startedMs)}</Text>
        </Text>
      </Box>
    </Box>
  );
}

function Row(props: { row: ApplyRow; nowMs: number; addressWidth: number; hostWidth: number; tone: (t: Tone) => object; spinner: boolean }): ReactNode {
  const { row: r, tone } = props;
  const elapsed = rowElapsedMs(r, props.nowMs);
  let icon: ReactNode;
  let detail: ReactNode;
  switch (r.status) {
    case "waiting":
      icon = <Text {...tone("gray")}>·</Text>;
      detail = <Text {...tone("gray")}>waiting</Text>;
      break;
    case "running":
      icon = <Text {...tone("cyan")}>{props.spinner ? <Spinner type="dots" /> : "▸"}</Text>;
      detail = <Text>{r.step ? stepLabel(r.step) : `${doing(r.action)}…`}</Text>;
      break;
    case "done":
      icon = <Text {...tone("green")}>✔</Text>;
      detail = <Text {...tone("green")}>{done(r.action)}</Text>;
      break;
    case "failed":
      icon = <Text {...tone("red")}>✖</Text>;
      detail = (
        <Text {...tone("red")} wrap="truncate-end">
          failed: {r.error}
          {r.cleanupError ? `; rollback failed too: ${r.cleanupError}` : ""}
        </Text>
      );
      break;
  }
  return (
    <Box>
      <Box width={4} flexShrink={0}>
        <Text>{"  "}</Text>
        {icon}
      </Box>
      <Box width={props.addressWidth} flexShrink={0}>
        <Text wrap="truncate-end">{r.address}</Text>
      </Box>
      <Box width={props.hostWidth + 15} flexShrink={0}>
        <Text>
          <Text {...tone(r.action === "create" ? "green" : r.action === "delete" ? "red" : "yellow")}>{ROW_LABELS[r.action] ?? r.action}</Text> on {r.host}
        </Text>
      </Box>
      <Box width={8} flexShrink={0}>
        <Text {...tone("gray")}>{elapsed === null ? "" : formatElapsed(elapsed)}</Text>
      </Box>
      <Box flexGrow={1}>{detail}</Box>
    </Box>
  );
}

const BAR = 12;

function HostLine(props: { host: string; counts: Counts; hostWidth: number; tone: (t: Tone) => object }): ReactNode {
  const { counts: c, tone } = props;
  const finished = c.done + c.failed;
  const filled = c.total === 0 ? 0 : Math.round((finished / c.total) * BAR);
  return (
    <Text>
      {"  "}
      {props.host.padEnd(props.hostWidth)}{" "}
      <Text {...tone(c.failed > 0 ? "red" : "green")}>{"█".repeat(filled)}</Text>
      <Text {...tone("gray")}>{"░".repeat(BAR - filled)}</Text> {finished}/{c.total}
      {c.running > 0 ? ` · ${c.running} running` : ""}
      {c.failed > 0 ? <Text {...tone("red")}> · {c.failed} failed</Text> : ""}
    </Text>
  );
}

function countsText(c: Counts): string {
  return (["running", "waiting", "done", "failed"] as const)
    .filter((k) => c[k] > 0)
    .map((k) => `${c[k]} ${k}`)
    .join(", ");
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
