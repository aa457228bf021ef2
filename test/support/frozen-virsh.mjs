#!/usr/bin/env node
// A stand-in for `virsh` connected to a host that froze: it prompts, takes every command and never answers, nor
// quits when told to or when its input closes, as virsh does while its connection waits on a host that stopped
// responding. Only a kill ends it (which is what the session does at a call's timeout).
import { setInterval } from "node:timers";

process.stdout.write("virsh # ");
process.stdin.resume();
setInterval(() => undefined, 1 << 30);
