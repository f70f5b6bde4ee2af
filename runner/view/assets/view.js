/* runner view: renders the embedded view data. Every value from a pack or run goes into the DOM as text
   (textContent, never innerHTML); the waterfall draws only the rows in sight; a span's details are built
   when it is clicked. Nothing is fetched: the data is the JSON block in index.html. */
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("view-data").textContent);
  var ROW = 22;
  var section = document.getElementById("section");
  var details = document.getElementById("details");

  function el(tag, cls) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    for (var i = 2; i < arguments.length; i++) {
      var kid = arguments[i];
      if (kid === null || kid === undefined) continue;
      node.appendChild(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return node;
  }
  function pretty(value) {
    if (typeof value === "string") return value;
    try { return JSON.stringify(value, null, 2); } catch (e) { return String(value); }
  }
  function pre(value) { return el("pre", null, pretty(value)); }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
  function kv(pairs) {
    var table = el("table", "kv");
    pairs.forEach(function (p) {
      if (p[1] === null || p[1] === undefined || p[1] === "") return;
      table.appendChild(el("tr", null, el("td", null, p[0]), el("td", null, typeof p[1] === "object" ? pretty(p[1]) : String(p[1]))));
    });
    return table;
  }
  function ms(v) { return v >= 1000 ? (v / 1000).toFixed(2) + " s" : v.toFixed(v < 10 ? 2 : 0) + " ms"; }
  function typeClass(t) { return ["session", "task", "tool", "llm", "http", "patch", "artifact"].indexOf(t) >= 0 ? "t-" + t : "t-other"; }

  /* Diffs: unified, coloured by line; side by side, recorded on the left. */
  function diffView(text) {
    var box = el("div", "diff");
    String(text || "").split("\n").forEach(function (line) {
      var c = line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff ") ? "meta"
        : line.startsWith("@@") ? "hunk" : line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : null;
      box.appendChild(el("div", c, line));
    });
    return box;
  }
  function sideBySide(text) {
    var grid = el("div", "sbs");
    var left = "recorded", right = "replayed", dels = [], adds = [];
    var rows = [];
    function flush() {
      for (var i = 0; i < Math.max(dels.length, adds.length); i++) rows.push([dels[i], adds[i], dels[i] !== undefined ? "del" : null, adds[i] !== undefined ? "add" : null]);
      dels = []; adds = [];
    }
    String(text || "").split("\n").forEach(function (line) {
      if (line.startsWith("---")) { left = line.slice(4) || left; return; }
      if (line.startsWith("+++")) { right = line.slice(4) || right; return; }
      if (line.startsWith("@@")) { flush(); rows.push([line, line, "hunk", "hunk"]); return; }
      if (line.startsWith("-")) { dels.push(line.slice(1)); return; }
      if (line.startsWith("+")) { adds.push(line.slice(1)); return; }
      flush();
      if (line === "") return;
      rows.push([line.slice(1), line.slice(1), null, null]);
    });
    flush();
    grid.appendChild(el("div", "hd", left));
    grid.appendChild(el("div", "hd", right));
    rows.forEach(function (r) {
      grid.appendChild(el("div", r[2], r[0] === undefined ? "" : r[0]));
      grid.appendChild(el("div", r[3], r[1] === undefined ? "" : r[1]));
    });
    return grid;
  }

  /* Messages: text parts as text, tool calls as name(arguments). */
  function toolCall(name, args) {
    var parsed = args;
    if (typeof args === "string") { try { parsed = JSON.parse(args); } catch (e) { parsed = args; } }
    return el("pre", "call", "tool call " + String(name) + "(" + pretty(parsed) + ")");
  }
  function content(value) {
    var box = el("div");
    if (typeof value === "string") { box.appendChild(pre(value)); return box; }
    if (Array.isArray(value)) {
      value.forEach(function (part) {
        if (part && typeof part === "object") {
          if (typeof part.text === "string") box.appendChild(pre(part.text));
          else if (part.type === "tool_use" || part.type === "function_call") box.appendChild(toolCall(part.name, part.input !== undefined ? part.input : part.arguments));
          else if (part.type === "tool_result") box.appendChild(el("div", null, "tool result", content(part.content)));
          else box.appendChild(pre(part));
        } else box.appendChild(pre(part));
      });
      return box;
    }
    if (value !== null && value !== undefined) box.appendChild(pre(value));
    return box;
  }
  function messages(list) {
    var box = el("div");
    if (!Array.isArray(list)) { if (list !== null && list !== undefined) box.appendChild(pre(list)); return box; }
    list.forEach(function (m) {
      if (!m || typeof m !== "object") { box.appendChild(pre(m)); return; }
      var msg = el("div", "msg", el("div", "role", String(m.role || "message")));
      msg.appendChild(content(m.content));
      (Array.isArray(m.tool_calls) ? m.tool_calls : []).forEach(function (c) {
        var f = (c && c.function) || c || {};
        msg.appendChild(toolCall(f.name, f.arguments));
      });
      if (m.tool_call_id) msg.appendChild(el("div", "hint", "answer to tool call " + String(m.tool_call_id)));
      box.appendChild(msg);
    });
    return box;
  }
  function textOf(src, key) { return key && src.texts && Object.prototype.hasOwnProperty.call(src.texts, key) ? src.texts[key] : null; }
  function fold(title, node) { var d = el("details", null, el("summary", null, title)); d.appendChild(node); return d; }

  function exchange(ex) {
    var box = el("div");
    if (!ex || typeof ex !== "object") return box;
    if (ex.error) { box.appendChild(pre(ex.error)); return box; }
    var req = ex.request || {}, resp = ex.response || {};
    box.appendChild(el("h3", null, "Request"));
    box.appendChild(kv([["method", req.method], ["url", (req.scheme || "") + "://" + (req.host || "") + ":" + (req.port || "") + (req.path || "")]]));
    if (req.headers) box.appendChild(fold("headers", pre(req.headers)));
    if (req.body) box.appendChild(pre(req.body.text !== undefined ? req.body.text : req.body));
    box.appendChild(el("h3", null, "Response"));
    box.appendChild(kv([["status", resp.status]]));
    if (resp.headers) box.appendChild(fold("headers", pre(resp.headers)));
    if (resp.body) box.appendChild(pre(resp.body.text !== undefined ? resp.body.text : resp.body));
    if (Array.isArray(resp.chunks)) box.appendChild(pre(resp.chunks.map(function (c) { return c && c.text !== undefined ? c.text : pretty(c); }).join("")));
    return box;
  }

  function stepDetails(src, step) {
    var box = el("div", null, el("h3", null, "Step " + step.id + " (" + step.kind + ")"));
    if (step.kind === "patch") {
      if (step.reason) box.appendChild(el("p", null, step.reason));
      box.appendChild(diffView(textOf(src, step.patch)));
    } else {
      box.appendChild(kv([["command", (step.argv || []).join(" ")], ["cwd", step.cwd], ["timeout", step.timeout], ["expected exit code", step.exit_code]]));
      box.appendChild(el("div", null, "stdout")); box.appendChild(pre(textOf(src, step.stdout) || ""));
      box.appendChild(el("div", null, "stderr")); box.appendChild(pre(textOf(src, step.stderr) || ""));
    }
    return box;
  }

  function spanDetails(src, row) {
    var d = src.details[row[0]] || {};
    var box = el("div", "span-details");
    box.appendChild(el("h2", null, row[2]));
    box.appendChild(kv([["type", row[3]], ["status", row[6] + (d.status ? ": " + d.status : "")], ["start", ms(row[4])], ["duration", ms(row[5])], ["span id", row[0]], ["kind", d.kind]]));
    var t = row[3];
    if (t === "llm") {
      box.appendChild(el("h3", null, "Prompt"));
      box.appendChild(messages(d.messages));
      box.appendChild(el("h3", null, "Response"));
      box.appendChild(messages(d.response));
      if (d.tools) { box.appendChild(el("h3", null, "Tool schemas")); box.appendChild(pre(d.tools)); }
      if (Array.isArray(d.retrieval)) {
        box.appendChild(el("h3", null, "Retrieval snippets"));
        d.retrieval.forEach(function (s) { box.appendChild(el("div", "hint", "#" + String(s && s.order) + " sha256 " + String(s && s.sha256))); box.appendChild(pre(s && s.content)); });
      }
      if (d.request_file) box.appendChild(fold("exact request (" + d.request_file + ")", pre(textOf(src, d.request_file))));
      if (d.response_file) box.appendChild(fold("exact response (" + d.response_file + ")", pre(textOf(src, d.response_file))));
    } else if (t === "tool") {
      box.appendChild(el("h3", null, "Command"));
      box.appendChild(pre(Array.isArray(d.argv) ? d.argv.join(" ") : d.argv));
      box.appendChild(el("h3", null, "stdout")); box.appendChild(pre(textOf(src, d.stdout) || ""));
      box.appendChild(el("h3", null, "stderr")); box.appendChild(pre(textOf(src, d.stderr) || ""));
    } else if (t === "http" && d.exchange !== undefined) {
      box.appendChild(el("h3", null, "HTTP exchange (cassette line " + (d.exchange + 1) + ")"));
      box.appendChild(exchange(src.http[d.exchange]));
    } else if (t === "artifact" && d.artifact) {
      box.appendChild(el("h3", null, "Artifact")); box.appendChild(pre(textOf(src, d.artifact)));
    }
    (d.steps || []).forEach(function (id) {
      var step = src.steps.filter(function (s) { return s.id === id; })[0];
      if (step) box.appendChild(stepDetails(src, step));
    });
    if (d.input !== undefined && t !== "llm") { box.appendChild(el("h3", null, "Input")); box.appendChild(pre(d.input)); }
    if (d.output !== undefined && t !== "tool") { box.appendChild(el("h3", null, "Output")); box.appendChild(pre(d.output)); }
    box.appendChild(el("h3", null, "Attributes"));
    box.appendChild(kv(Object.keys(d.attributes || {}).sort().map(function (k) { return [k, d.attributes[k]]; })));
    if (d.events && d.events.length) { box.appendChild(el("h3", null, "Events")); box.appendChild(pre(d.events)); }
    return box;
  }
  function show(node) { clear(details); details.appendChild(node); details.scrollTop = 0; }

  /* The waterfall: rows in tree order, only the ones in sight in the DOM. */
  function waterfall(src) {
    var rows = src.spans, n = rows.length, kids = [], roots = [], order = [], depth = new Array(n), end = 0;
    for (var i = 0; i < n; i++) { kids.push([]); end = Math.max(end, rows[i][4] + rows[i][5]); }
    for (i = 0; i < n; i++) { var p = rows[i][1]; if (p >= 0 && p < n && p !== i) kids[p].push(i); else roots.push(i); }
    function byStart(a, b) { return rows[a][4] - rows[b][4]; }
    var stack = roots.sort(byStart).reverse().map(function (r) { return [r, 0]; }), seen = new Uint8Array(n);
    while (stack.length) {
      var top = stack.pop(), r = top[0];
      if (seen[r]) continue;
      seen[r] = 1; depth[r] = top[1]; order.push(r);
      var k = kids[r].sort(byStart);
      for (var j = k.length - 1; j >= 0; j--) stack.push([k[j], top[1] + 1]);
    }
    for (i = 0; i < n; i++) if (!seen[i]) { depth[i] = 0; order.push(i); }
    var total = end || 1, selected = -1;
    var box = el("div", "wf");
    box.appendChild(el("div", "wf-head", el("div", "name", "span (" + n + ")"), el("div", "lane", "timeline " + ms(total))));
    var body = el("div", "wf-body");
    body.style.height = order.length * ROW + "px";
    box.appendChild(body);
    function draw() {
      var first = Math.max(0, Math.floor(box.scrollTop / ROW) - 5);
      var last = Math.min(order.length, first + Math.ceil((box.clientHeight || 800) / ROW) + 10);
      clear(body);
      for (var x = first; x < last; x++) {
        var idx = order[x], row = rows[idx];
        var line = el("div", "row st-" + row[6] + (idx === selected ? " sel" : ""));
        line.style.top = x * ROW + "px";
        line.dataset.span = row[0];
        line.dataset.type = row[3];
        var name = el("div", "name", el("span", "type " + typeClass(row[3]), row[3]), row[2]);
        name.style.paddingLeft = 4 + depth[idx] * 12 + "px";
        var bar = el("div", "bar " + typeClass(row[3]));
        var left = (row[4] / total) * 100, width = (row[5] / total) * 100;
        bar.style.left = left + "%"; bar.style.width = width + "%";
        var dur = el("span", "dur", ms(row[5]) + (row[6] === "ERROR" ? " ERROR" : ""));
        if (left + width > 80 && width > 15) { dur.style.right = 100 - left - width + 1 + "%"; dur.className = "dur in"; }
        else dur.style.left = Math.min(left + width, 80) + "%";
        line.appendChild(name);
        line.appendChild(el("div", "lane", bar, dur));
        line.addEventListener("click", (function (k) { return function () { selected = k; draw(); show(spanDetails(src, rows[k])); }; })(idx));
        body.appendChild(line);
      }
    }
    box.addEventListener("scroll", function () { window.requestAnimationFrame(draw); });
    setTimeout(draw, 0);
    draw();
    return box;
  }

  function stepsTable(src) {
    var box = el("div", "pad", el("h2", null, "Steps replay walks"));
    var table = el("table", "steps", el("tr", null, el("th", null, "step"), el("th", null, "kind"), el("th", null, "what")));
    src.steps.forEach(function (s) {
      var tr = el("tr", null, el("td", null, s.id), el("td", null, s.kind), el("td", null, s.kind === "patch" ? (s.reason || s.patch || "") : (s.argv || []).join(" ")));
      tr.style.cursor = "pointer";
      tr.addEventListener("click", function () { show(stepDetails(src, s)); });
      table.appendChild(tr);
    });
    box.appendChild(table);
    return box;
  }
  function environment(src) {
    var env = src.environment, box = el("div", "pad", el("h2", null, "Environment snapshot"));
    box.appendChild(kv([["session", src.session.id], ["created", src.session.created_at], ["kind", env.kind], ["image", env.image],
      ["snapshot", env.snapshot], ["runtimes", env.runtimes], ["git", env.git], ["agent", env.agent], ["model defaults", env.llm]]));
    env.files.forEach(function (f) { box.appendChild(el("h3", null, f)); box.appendChild(pre(textOf(src, f))); });
    return box;
  }
  function privacy(src) {
    var p = src.privacy, box = el("div", "pad", el("h2", null, "Privacy"));
    box.appendChild(el("p", null, p.revealed ? "Revealed view: original values are shown (keyring given). Do not share this page." : "Masked view: secrets appear as REDACTED_<kind>_<hash> placeholders."));
    box.appendChild(kv([["redaction policy", p.redaction_policy || "none (redaction was off)"], ["encrypted payloads", String(p.encrypted_payloads)], ["key ids", p.key_ids.join(", ")], ["tenant", p.tenant]]));
    box.appendChild(el("h3", null, "Redactions by kind"));
    box.appendChild(kv(Object.keys(p.redactions || {}).sort().map(function (k) { return [k, p.redactions[k]]; })));
    if (p.findings && p.findings.length) { box.appendChild(el("h3", null, "Audit findings")); box.appendChild(pre(p.findings)); }
    return box;
  }
  function httpList(src) {
    var box = el("div", "pad", el("h2", null, "Cassette: " + src.http.length + " recorded exchange(s)"));
    src.http.forEach(function (ex, i) {
      var req = (ex && ex.request) || {}, resp = (ex && ex.response) || {};
      var line = el("div", "row-static", "#" + (i + 1) + " " + String(req.method || "") + " " + String(req.host || "") + String(req.path || "") + " → " + String(resp.status || ex.error || ""));
      line.style.cursor = "pointer";
      line.addEventListener("click", function () { show(el("div", null, el("h2", null, "Exchange #" + (i + 1)), exchange(ex))); });
      box.appendChild(line);
    });
    return box;
  }

  /* A replay run: the verdict per step, the first divergence side by side, the cassette's use. */
  function replay(src) {
    var box = el("div", "pad");
    src.packs.forEach(function (o) {
      box.appendChild(el("h2", null, o.pack + " ", el("span", "verdict v-" + o.verdict, o.verdict)));
      box.appendChild(kv([["likely cause", o.cause], ["error", o.error], ["image", o.image], ["duration", o.duration_s.toFixed(1) + " s"], ["run folder", o.run_dir]]));
      (o.warnings || []).forEach(function (w) { box.appendChild(el("div", "bad", "warning: " + w)); });
      var table = el("table", "steps", el("tr", null, el("th", null, "step"), el("th", null, "kind"), el("th", null, "verdict"), el("th", null, "summary"), el("th", null, "time")));
      o.steps.forEach(function (s) {
        var tr = el("tr", s.step_id === o.first_divergence ? "first" : null, el("td", null, s.step_id), el("td", null, s.kind),
          el("td", s.ok ? "ok" : "bad", s.ok ? "agreed" : "diverged"), el("td", null, s.summary), el("td", null, s.duration_s.toFixed(2) + " s"));
        tr.dataset.step = s.step_id;
        tr.style.cursor = "pointer";
        tr.addEventListener("click", function () { show(runStep(src, o, s)); });
        table.appendChild(tr);
      });
      box.appendChild(table);
      var first = o.steps.filter(function (s) { return s.step_id === o.first_divergence; })[0];
      if (first) {
        var div = el("div", "divergence", el("h2", null, "First divergence: step " + first.step_id));
        div.appendChild(kv([["likely cause", o.cause], ["summary", first.summary]]));
        first.differences.forEach(function (d) {
          div.appendChild(el("h3", null, d.summary));
          if (d.diff) div.appendChild(sideBySide(d.diff));
        });
        box.appendChild(div);
      }
    });
    return box;
  }
  function runStep(src, o, s) {
    var box = el("div", null, el("h2", null, "Step " + s.step_id + " (" + s.kind + ")"));
    box.appendChild(kv([["verdict", s.ok ? "agreed" : "diverged"], ["summary", s.summary], ["duration", s.duration_s.toFixed(2) + " s"]]));
    s.differences.forEach(function (d) { box.appendChild(el("h3", null, d.summary)); if (d.diff) box.appendChild(diffView(d.diff)); });
    Object.keys(src.logs).forEach(function (name) {
      if (name.split(".")[0] === s.step_id) { box.appendChild(el("h3", null, "log " + name)); box.appendChild(pre(src.logs[name])); }
    });
    Object.keys(src.outputs).forEach(function (name) {
      if (name.split("/")[0] === s.step_id) { box.appendChild(el("h3", null, "output " + name)); box.appendChild(pre(src.outputs[name])); }
    });
    return box;
  }
  function cassette(src) {
    var box = el("div", "pad");
    src.packs.forEach(function (o) {
      var c = o.cassettes || {};
      box.appendChild(el("h2", null, "Cassette use: " + o.pack));
      box.appendChild(kv([["served", c.served], ["missed", (c.misses || []).length], ["unused", c.unused]]));
      (c.misses || []).forEach(function (m) { box.appendChild(el("div", "bad", "miss: " + m)); });
    });
    if (src.proxy) { box.appendChild(el("h3", null, "proxy-report.json")); box.appendChild(pre(src.proxy)); }
    return box;
  }

  // The Environments tab (runner view --registry). Served, the page carries a token and gets a Roll back
  // button per environment, which POSTs to /api/rollback (runner rollback's code path); exported, read-only.
  function environments(reg) {
    var box = el("div", "pad");
    box.appendChild(el("h2", null, "Environments"));
    box.appendChild(kv([["registry", reg.root], ["head", reg.head], ["golden gate", reg.gate ? "configured" : "none (moves go ungated)"]]));
    var status = el("div", "env-status");
    status.id = "env-status";
    box.appendChild(status);
    if (!reg.environments.length) box.appendChild(el("p", "hint", "No environment yet: runner config promote ENV VERSION"));
    reg.environments.forEach(function (e) {
      var card = el("div", "env");
      card.dataset.env = e.name;
      card.appendChild(el("h3", null, e.name));
      var current = el("span", "env-version", String(e.version));
      current.dataset.role = "current";
      card.appendChild(el("div", null, "current version: ", current));
      card.appendChild(kv([
        ["went live", e.live.map(function (l) { return "v" + l.version + " (" + l.gate + ")"; }).join(" → ")],
        ["last gate", e.last_gate || "-"],
      ]));
      var hist = el("table", "steps", el("tr", null, el("th", null, "when"), el("th", null, "who"), el("th", null, "what"), el("th", null, "gate"), el("th", null, "why")));
      e.history.forEach(function (h) {
        hist.appendChild(el("tr", null, el("td", null, h.when), el("td", null, h.who), el("td", null, h.subject), el("td", null, h.gate + (h.override ? " (override: " + h.override + ")" : "")), el("td", null, el("pre", null, h.reason))));
      });
      card.appendChild(fold("history (" + e.history.length + ")", hist));
      if (reg.token) card.appendChild(rollbackForm(reg, e, status));
      box.appendChild(card);
    });
    box.appendChild(el("h3", null, "Versions"));
    var vt = el("table", "steps", el("tr", null, el("th", null, "version"), el("th", null, "description")));
    reg.versions.forEach(function (v) { vt.appendChild(el("tr", null, el("td", null, String(v.version)), el("td", null, v.description))); });
    box.appendChild(vt);
    return box;
  }
  function rollbackForm(reg, e, status) {
    var form = el("div", "rollback");
    var reason = el("input");
    reason.type = "text";
    reason.placeholder = "why (required, recorded in the history)";
    reason.setAttribute("aria-label", "reason for rolling back " + e.name);
    var button = el("button", null, "Roll back");
    button.addEventListener("click", function () {
      if (!reason.value.trim()) { status.className = "env-status bad"; status.textContent = "Give a reason: it goes into the registry's history."; return; }
      button.disabled = true;
      status.className = "env-status";
      status.textContent = "rolling back " + e.name + " (running the golden gate)...";
      var headers = { "Content-Type": "application/json" };
      headers["X-Runner-Token"] = reg.token;
      fetch("/api/rollback", { method: "POST", headers: headers, body: JSON.stringify({ environment: e.name, reason: reason.value }) })
        .then(function (r) { return r.json(); })
        .then(function (reply) {
          if (reply.ok) {
            reply.registry.token = reg.token;
            DATA.registry = reply.registry;
            clear(section);
            section.appendChild(environments(DATA.registry));
            status = document.getElementById("env-status");
          } else {
            button.disabled = false;
          }
          status.className = reply.ok ? "env-status good" : "env-status bad";
          status.textContent = reply.ok ? reply.message : reply.error;
          (reply.report || []).forEach(function (line) { status.appendChild(el("pre", null, line)); });
        })
        .catch(function (err) { button.disabled = false; status.className = "env-status bad"; status.textContent = "request failed: " + String(err); });
    });
    form.appendChild(reason);
    form.appendChild(button);
    return form;
  }

  var tabs = [];
  if (DATA.registry) tabs.push(["Environments", function () { return environments(DATA.registry); }]);
  DATA.sources.forEach(function (src) {
    if (src.kind === "run") {
      tabs.push([src.name + " · replay", function () { return replay(src); }]);
      tabs.push([src.name + " · cassette", function () { return cassette(src); }]);
    } else {
      tabs.push([src.name + " · spans", function () { return waterfall(src); }]);
      tabs.push([src.name + " · steps", function () { return stepsTable(src); }]);
      tabs.push([src.name + " · environment", function () { return environment(src); }]);
      tabs.push([src.name + " · privacy", function () { return privacy(src); }]);
      tabs.push([src.name + " · http", function () { return httpList(src); }]);
    }
  });
  var nav = document.getElementById("tabs"), buttons = [];
  function open(i) {
    buttons.forEach(function (b, j) { b.className = i === j ? "on" : ""; });
    clear(section);
    clear(details);
    details.appendChild(el("p", "hint", "Click a span, a step or an exchange to see its details."));
    section.appendChild(tabs[i][1]());
  }
  tabs.forEach(function (t, i) {
    var b = el("button", null, t[0]);
    b.dataset.tab = String(i);
    b.addEventListener("click", function () { open(i); });
    buttons.push(b);
    nav.appendChild(b);
  });
  var mode = document.getElementById("mode");
  mode.textContent = DATA.revealed ? "revealed" : "masked";
  if (DATA.revealed) mode.className = "badge revealed";
  if (tabs.length) open(0);
  document.body.dataset.ready = "1";
})();
