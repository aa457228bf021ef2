import { createServer, connect, type Server, type Socket } from "node:net";

/** A loopback TCP proxy that a test can cut (the service behind it "goes down") and restore on the same port. */
export interface TcpProxy {
  /** 127.0.0.1:<port> forwards to the target. */
  readonly port: number;
  readonly url: string;
  /** Stops listening and resets every connection: callers see refused or reset connections. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

/** Starts a proxy on a free 127.0.0.1 port to `target` (e.g. the test API server's port). */
export async function startTcpProxy(target: { host: string; port: number }, scheme = "https"): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | null = null;
  const listen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const s = createServer((client) => {
        const upstream = connect(target.port, target.host);
        sockets.add(client).add(upstream);
        const drop = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        client.on("error", drop).on("close", drop);
        upstream.on("error", drop).on("close", drop);
        client.pipe(upstream).pipe(client);
      });
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        server = s;
        resolve((s.address() as { port: number }).port);
      });
    });
  const port = await listen(0);
  const cut = async () => {
    const s = server;
    server = null;
    for (const sock of sockets) sock.resetAndDestroy();
    sockets.clear();
    if (s) await new Promise<void>((r) => s.close(() => r()));
  };
  return {
    port,
    url: `${scheme}://127.0.0.1:${port}`,
    cut,
    restore: async () => {
      if (!server) await listen(port);
    },
    close: cut,
  };
}
