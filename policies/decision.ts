/** A desired size per group with the reason for it: what the planner takes as input. */
export interface Decision {
  group: string;
  desired: number;
  /** Machine-readable reason. */
  code: "config";
  /** Human reason with its numbers, e.g. "desired: 3 in config". */
  reason: string;
}
