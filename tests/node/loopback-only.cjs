// Preload (`node --require ./loopback-only.cjs …`) for third-party test servers that listen on
// every interface: every `listen(port, …)` binds 127.0.0.1 instead, and the bound port is
// printed to stderr as `PADDOCK_LISTENING <port>` so a test can start the server on port 0.
"use strict";
const net = require("node:net");
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  this.once("listening", () => {
    const a = this.address();
    if (a && typeof a === "object") process.stderr.write(`PADDOCK_LISTENING ${a.port}\n`);
  });
  if (typeof args[0] === "number" || (typeof args[0] === "string" && /^\d+$/.test(args[0]))) {
    const port = Number(args[0]);
    const rest = args.slice(1).filter((a) => typeof a === "function");
    return listen.call(this, port, "127.0.0.1", ...rest);
  }
  if (args[0] && typeof args[0] === "object" && "port" in args[0]) {
    return listen.call(this, { ...args[0], host: "127.0.0.1" }, ...args.slice(1));
  }
  return listen.apply(this, args);
};
