/**
 * `premiscale validate --check-hosts`: what the live hosts say about the config. Every host is observed and asked
 * about the templates of its groups; a host that does not answer, a template that cannot go on a host at all (its
 * adapter says why: a missing pool or base image), and a group whose hosts could never hold `max` of its VMs are
 * problems. How full the hosts are right now is not: that is the planner's business.
 */
import type { Config } from "../config/types.js";
import { groupCapacityProblems } from "../planner/placement/capacity.js";
import type { Provider } from "../providers/provider.js";
import { issueAt } from "./config.js";
import { observeHosts } from "./make-plan.js";

/** Problems found on the hosts, one line each (config positions where they point at a field). */
export async function checkHosts(config: Config, providers: ReadonlyMap<string, Provider>): Promise<string[]> {
  const observations = await observeHosts(providers, config.hosts, null, config.groups);
  const byHost = new Map(observations.map((o) => [o.host, o]));
  const problems: string[] = [];
  for (const o of observations) {
    if (o.status === "unreachable") problems.push(`host ${o.host}: unreachable: ${o.error.replace(/^host \S+: /, "")}`);
    else for (const [group, fit] of Object.entries(o.fits)) if (!fit.ok) problems.push(`host ${o.host}: group ${group}: ${fit.reason}`);
  }
  config.groups.forEach((g, gi) => {
    for (const message of groupCapacityProblems(g, byHost)) {
      const issue = issueAt(config, ["groups", gi, "max"], message, "lower max or the template's size, add hosts, or grow the hosts");
      problems.push(`${issue.file}:${issue.line}:${issue.column}: ${issue.path}: ${issue.message} (${issue.fix})`);
    }
  });
  return problems;
}
