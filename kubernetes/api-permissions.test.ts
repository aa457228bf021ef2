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

/** The HTTP method of a call `node` (a path expression) is an argument of: "WATCH" for a watch helper; else null. */
function methodOf(node: ts.Node): string | null {
  const parent = node.parent;
  if (!parent || !ts.isCallExpression(parent) || !parent.arguments.includes(node as ts.Expression)) return null;
  const callee = ts.isPropertyAccessExpression(parent.expression) ? parent.expression.name.text : ts.isIdentifier(parent.expression) ? parent.expression.text : "";
  const first = parent.arguments[0];
  const inFirstTwo = parent.arguments.slice(0, 2).includes(node as ts.Expression);
  // api.request("GET", path, body): kube-api.ts's KubeApi.
  if (callee === "request") return first && parent.arguments[1] === node ? literalText(first) : null;
  // A watch helper: a GET with watch=true.
  if (/^watch/i.test(callee) && inFirstTwo) return "WATCH";
  // A list helper (listAll(api, path, query)): a GET of a collection.
  if (/^list/i.test(callee) && inFirstTwo) return "GET";
  return null;
}

/**
 * Every API path in `text` (a file's source), with the HTTP method of the call it is an argument of. A path kept in
 * a `const` first is followed to the calls in the same file that pass it, alone or as the start of a template
 * (`${path}/${name}`): one found call per use.
 */
function scanSource(file: string, text: string): FoundCall[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const found: FoundCall[] = [];
  const at = (node: ts.Node) => `${file}:${sf.getLineAndCharacterOfPosition(node.getStart()).line + 1}`;
  const add = (node: ts.Node, method: string | null, path: string) => {
    const call = method === null ? null : method === "WATCH" ? kubeApiCall("GET", `${path}${path.includes("?") ? "&" : "?"}watch=true`) : kubeApiCall(method, path);
    found.push({ where: at(node), method, path, call });
  };
  /** The uses of variable `name` as a path: the identifier itself, or a template that starts with it. */
  const usesOf = (name: string): { node: ts.Node; suffix: string }[] => {
    const uses: { node: ts.Node; suffix: string }[] = [];
    const walk = (n: ts.Node): void => {
      if (ts.isIdentifier(n) && n.text === name && ts.isCallExpression(n.parent)) uses.push({ node: n, suffix: "" });
      else if (ts.isTemplateExpression(n) && n.head.text === "" && ts.isIdentifier(n.templateSpans[0]!.expression) && n.templateSpans[0]!.expression.text === name) {
        uses.push({ node: n, suffix: literalText(n)!.slice("${}".length) });
        return;
      }
      ts.forEachChild(n, walk);
    };
    walk(sf);
    return uses;
  };
  const visit = (node: ts.Node): void => {
    const path = literalText(node);
    // A path as an object key (a table of paths to messages) is not a call.
    const isKey = node.parent !== undefined && (ts.isPropertyAssignment(node.parent) || ts.isPropertyDeclaration(node.parent)) && node.parent.name === node;
    if (path !== null && !isKey && /^\/apis?\//.test(path)) {
      const decl = node.parent;
      if (decl && ts.isVariableDeclaration(decl) && decl.initializer === node && ts.isIdentifier(decl.name)) {
        const uses = usesOf(decl.name.text);
        if (uses.length === 0) add(node, null, path);
        for (const u of uses) add(u.node, methodOf(u.node), path + u.suffix);
      } else {
        add(node, methodOf(node), path);
      }
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

describe("the scan of API calls", () => {
  it("follows a path kept in a const to each call that passes it, alone or as a template's start", () => {
    const src = [
      "const nodePath = `/api/v1/nodes/${name}`;",
      "await api.request(\"GET\", nodePath);",
      "await api.request(\"PATCH\", nodePath, patch);",
      "const path = `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`;",
      "await api.request(\"PUT\", `${path}/${name}`, body);",
      "await api.request(\"POST\", path, body);",
      "await listAll(api, \"/apis/apps/v1/daemonsets\");",
      "const MESSAGES = { \"/api/v1/pods\": \"list on pods\" };",
      "const unused = \"/api/v1/secrets\";",
    ].join("\n");
    expect(scanSource("x.ts", src).map((f) => [f.where, f.call && `${f.call.verb} ${f.call.apiGroup}/${f.call.resource}`])).toEqual([
      ["x.ts:2", "get /nodes"],
      ["x.ts:3", "patch /nodes"],
      ["x.ts:5", "update coordination.k8s.io/leases"],
      ["x.ts:6", "create coordination.k8s.io/leases"],
      ["x.ts:7", "list apps/daemonsets"],
      ["x.ts:9", null],
    ]);
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
    expect(unclassified, "API paths not passed to api.request(METHOD, path), a list… or a watch… helper: extend scanSource in kubernetes/api-permissions.test.ts").toEqual([]);
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
