import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { KUBE_API_PERMISSIONS, kubeApiCall, permissionCovers, type KubeApiCall } from "./api-permissions.js";

// The table of API calls is only worth something if it cannot fall behind the code: these tests read every source
// file of kubernetes/ (its subfolders too, such as native/) with the TypeScript parser, find every API path written
// in it, and classify the call it is made with. A path the scan cannot classify fails too, so a new way of calling
// the API is noticed rather than missed.

const ROOT = resolve(import.meta.dirname);

/** One API path in the code, with the call it is made in. */
interface FoundCall {
  where: string;
  method: string | null;
  path: string;
  call: KubeApiCall | null;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    // testing/ holds premiscale's own test clients, not calls premiscale makes in a cluster.
    if (e.isDirectory()) {
      if (e.name !== "testing" && e.name !== "protos") out.push(...sourceFiles(p));
    } else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") && !e.name.endsWith(".d.ts")) out.push(p);
  }
  return out.sort();
}

/** A literal's text with each `${…}` written as `${}`; null for a node that is not a string or template literal. */
function literalText(node: ts.Node): string | null {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
  if (ts.isTemplateExpression(node)) return node.head.text + node.templateSpans.map((s) => "${}" + s.literal.text).join("");
  return null;
}

/** Every API path in `text` (a file's source), with the HTTP method of the call it is an argument of. */
function scanSource(file: string, text: string): FoundCall[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: FoundCall[] = [];
  const visit = (node: ts.Node): void => {
    const path = literalText(node);
    if (path !== null && /^\/apis?\//.test(path)) {
      const { line } = sf.getLineAndCharacterOfPosition(node.getStart());
      const where = `${file}:${line + 1}`;
      let method: string | null = null;
      const parent = node.parent;
      if (ts.isCallExpression(parent) && parent.arguments.includes(node as ts.Expression)) {
        const callee = ts.isPropertyAccessExpression(parent.expression) ? parent.expression.name.text : ts.isIdentifier(parent.expression) ? parent.expression.text : "";
        const first = parent.arguments[0];
        // api.request("GET", path, body): kube-api.ts's KubeApi.
        if (callee === "request" && first && parent.arguments[1] === node) method = literalText(first);
        // A watch helper: any GET with watch=true.
        else if (/^watch/i.test(callee) && first === node) method = "WATCH";
      }
      const call = method === null ? null : method === "WATCH" ? kubeApiCall("GET", `${path}${path.includes("?") ? "&" : "?"}watch=true`) : kubeApiCall(method, path);
      found.push({ where, method, path, call });
      return;
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

function scanCode(): FoundCall[] {
  return sourceFiles(ROOT).flatMap((f) => scanSource(relative(resolve(ROOT, ".."), f), readFileSync(f, "utf8")));
}

describe("kubeApiCall", () => {
  it("reads the verb, group, resource and namespace of a path as the API server's authorizer does", () => {
    expect(kubeApiCall("GET", "/api/v1/nodes")).toEqual({ verb: "list", apiGroup: "", resource: "nodes" });
    expect(kubeApiCall("PATCH", "/api/v1/nodes/${}")).toEqual({ verb: "patch", apiGroup: "", resource: "nodes" });
    expect(kubeApiCall("GET", "/api/v1/namespaces/kube-system/secrets?labelSelector=${}")).toEqual({ verb: "list", apiGroup: "", resource: "secrets", namespace: "kube-system" });
    expect(kubeApiCall("GET", "/api/v1/pods?watch=true&fieldSelector=${}")).toEqual({ verb: "watch", apiGroup: "", resource: "pods" });
    expect(kubeApiCall("POST", "/api/v1/namespaces/${}/pods/${}/eviction")).toEqual({ verb: "create", apiGroup: "", resource: "pods/eviction", namespace: "*" });
    expect(kubeApiCall("PUT", "/apis/coordination.k8s.io/v1/namespaces/${}/leases/${}")).toEqual({ verb: "update", apiGroup: "coordination.k8s.io", resource: "leases", namespace: "*" });
    expect(kubeApiCall("DELETE", "/api/v1/namespaces/kube-system/secrets")).toMatchObject({ verb: "deletecollection" });
    expect(kubeApiCall("GET", "/version")).toBeNull();
  });

  it("matches a call to its rule by scope: a literal namespace needs that namespace's Role, a cluster path the ClusterRole", () => {
    const secretsList = KUBE_API_PERMISSIONS.find((p) => p.resource === "secrets" && p.verb === "list")!;
    expect(permissionCovers(secretsList, kubeApiCall("GET", "/api/v1/namespaces/kube-system/secrets")!)).toBe(true);
    expect(permissionCovers(secretsList, kubeApiCall("GET", "/api/v1/namespaces/default/secrets")!)).toBe(false);
    expect(permissionCovers(secretsList, kubeApiCall("GET", "/api/v1/secrets")!)).toBe(false);
  });
});

describe("the table of Kubernetes API calls (kubernetes/api-permissions.ts)", () => {
  const found = scanCode();

  it("finds the calls node-hooks.ts makes (the scan works)", () => {
    const hooks = found.filter((f) => f.where.startsWith("kubernetes/node-hooks.ts"));
    expect(hooks.map((f) => `${f.call?.verb} ${f.call?.resource}`).sort()).toEqual(
      ["create secrets", "delete nodes", "delete secrets", "list nodes", "list secrets", "patch nodes"].sort(),
    );
  });

  it("can classify every API path written in kubernetes/ (a path in another kind of call must be taught to the scan)", () => {
    const unclassified = found.filter((f) => f.call === null).map((f) => `${f.where}: ${f.path}`);
    expect(unclassified, "API paths not passed to api.request(METHOD, path) or a watch helper: extend scanSource in kubernetes/api-permissions.test.ts").toEqual([]);
  });

  it("lists every API call the code makes, so the Helm chart's RBAC can be held to it", () => {
    const missing = found.filter((f) => f.call && !KUBE_API_PERMISSIONS.some((p) => permissionCovers(p, f.call!))).map((f) => `${f.where}: ${f.method} ${f.path} needs ${JSON.stringify(f.call)}`);
    expect(missing, "add a row to KUBE_API_PERMISSIONS and the rule to deploy/helm/premiscale/templates/rbac.yaml").toEqual([]);
  });

  it("lists no call the code no longer makes (rows marked code are all found)", () => {
    const stale = KUBE_API_PERMISSIONS.filter((p) => p.status === "code" && !found.some((f) => f.call && permissionCovers(p, f.call)));
    expect(stale.map((p) => `${p.verb} ${p.apiGroup}/${p.resource} (${p.usedBy})`), "remove the row and the chart's rule: premiscale no longer needs that right").toEqual([]);
  });

  it("marks a planned call as code once the code makes it", () => {
    const landed = KUBE_API_PERMISSIONS.filter((p) => p.status === "planned" && found.some((f) => f.call && permissionCovers(p, f.call)));
    expect(landed.map((p) => `${p.verb} ${p.apiGroup}/${p.resource}`), "set status: \"code\" and usedBy to the file that makes the call").toEqual([]);
  });

  it("refuses typed API clients of @kubernetes/client-node, whose calls the scan cannot see", () => {
    const typed = sourceFiles(ROOT).filter((f) => /\b(makeApiClient|CoreV1Api|CoordinationV1Api|PolicyV1Api|AppsV1Api|Watch)\b/.test(readFileSync(f, "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "")));
    expect(typed.map((f) => relative(ROOT, f)), "call the API through kube-api.ts's request(METHOD, path), or teach the scan the new client").toEqual([]);
  });
});
