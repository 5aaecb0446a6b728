// The status page of copilot-proxy: polls status.json and draws it.
//
// Why polling, not an event stream: one short request every few seconds
// passes any load balancer or corporate proxy unchanged, holds no
// connection open (an open stream would count as in flight, take a
// connection slot and meet idle timeouts), and with --workers or several
// hosts any process may answer any poll.  Polling stops while the tab is
// hidden.
//
// The client key is asked for once, kept in this tab's sessionStorage
// (never in a URL or a cookie) and sent as "Authorization: Bearer".
// Everything shown is set with textContent: key and model names are data.
"use strict";

(() => {
  const POLL_MS = 2500;
  const KEY_STORE = "copilot-proxy.key";
  const DAYS_STORE = "copilot-proxy.days";
  const COUNTERS = [
    "requests", "refused", "errors", "input_tokens", "cached_tokens",
    "output_tokens", "reasoning_tokens", "nano_aiu",
  ];
  const SVG = "http://www.w3.org/2000/svg";

  const $ = (selector) => document.querySelector(selector);
  const state = {
    days: Number(sessionStorage.getItem(DAYS_STORE)) || 7,
    sort: { column: "key", descending: false },
    poll: 0,
    timer: null,
    last: null,
  };

  // Formatting for people; the exact numbers stay in data-value and title.

  function compact(n) {
    const units = [[1e9, " G"], [1e6, " M"], [1e3, "k"]];
    for (const [size, unit] of units) {
      if (Math.abs(n) >= size) {
        const value = n / size;
        return (value >= 100 ? value.toFixed(0) : value.toFixed(1)).replace(/\.0$/, "") + unit;
      }
    }
    return String(n);
  }

  function credits(nano) {
    const value = nano / 1e9;
    if (value === 0) return "0";
    if (value >= 1000) return compact(Math.round(value));
    if (value >= 10) return value.toFixed(1);
    return value >= 0.01 ? value.toFixed(2) : value.toPrecision(2);
  }

  function bytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }

  function span(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.round(s / 60)} min`;
    if (s < 86400 * 2) return `${Math.round(s / 3600)} h`;
    return `${Math.round(s / 86400)} d`;
  }

  const exact = (n) => Number(n).toLocaleString("en");
  const iso = (seconds) => new Date(seconds * 1000).toISOString().replace(/\.\d+Z$/, "Z");

  // Building elements.

  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === null || value === undefined) continue;
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else if (name.startsWith("data-")) node.dataset[toCamel(name.slice(5))] = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  const toCamel = (name) => name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

  function numberCell(value, text, counter) {
    return el("td", {
      class: "num", "data-value": String(value), "data-counter": counter,
      title: exact(value), text: text,
    });
  }

  function bar(fraction, extra) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    const track = document.createElementNS(SVG, "rect");
    track.setAttribute("class", "track");
    track.setAttribute("width", "100%");
    track.setAttribute("height", "100%");
    track.setAttribute("rx", "4");
    const fill = document.createElementNS(SVG, "rect");
    fill.setAttribute("class", `fill ${extra || ""}`.trim());
    const percent = Math.max(0, Math.min(1, fraction)) * 100;
    fill.setAttribute("width", `${percent.toFixed(2)}%`);
    fill.setAttribute("height", "100%");
    fill.setAttribute("rx", "4");
    svg.append(track, fill);
    return svg;
  }

  function fillTable(section, rows) {
    const body = $(`${section} tbody`);
    // Each cell names its column, for the stacked rows of a narrow screen.
    const names = [...document.querySelectorAll(`${section} thead th`)].map((th) => th.textContent);
    for (const row of rows) {
      [...row.children].forEach((cell, i) => { cell.dataset.label = names[i] || ""; });
    }
    body.replaceChildren(...rows);
    $(`${section} .empty`).hidden = rows.length > 0;
    $(`${section} .table-wrap`).hidden = rows.length === 0;
  }

  // The sections.

  function drawProcess(doc) {
    const process = doc.process || {};
    let text = `Process ${process.pid} · version ${doc.version}`;
    const fleet = process.fleet_processes || [];
    if (fleet.length > 1) {
      text += ` · one of ${fleet.length} processes: in flight, errors and usage are the` +
        " whole deployment's";
    } else if (process.several || process.fleet) {
      const why = process.several ? "--workers" : "a shared Redis";
      text += ` · one of several processes (${why}): in flight and errors are this one's,` +
        " usage is the whole deployment's";
    }
    $("#process").textContent = text;
    const viewer = doc.viewer || {};
    let who = "no client keys: everything";
    if (viewer.key) who = viewer.admin ? `key ${viewer.key} (admin: every key)` : `key ${viewer.key} (its own requests)`;
    else if (sessionStorage.getItem(KEY_STORE)) who = "every key";
    $("#viewer").textContent = who;
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  function drawHealth(doc) {
    const token = doc.token || {};
    const facts = [];
    const usable = doc.token_usable;
    const badge = el("span", { class: usable ? "ok" : "bad", text: usable ? "usable" : "unavailable" });
    let expiry = "never expires, as far as the proxy knows";
    if (token.expires_in_s !== null && token.expires_in_s !== undefined) {
      expiry = token.expires_in_s > 0 ? `expires in ${span(token.expires_in_s)}` : "expired";
    }
    facts.push(["Token", [badge, ` · ${token.source} · ${expiry}`]]);
    facts.push(["Upstream", [doc.upstream]]);
    const shared = doc.shared_state;
    if (shared) {
      const status = shared.status || "ok";
      const where = shared.backend === "redis" ? `Redis ${shared.redis || ""}` : "this process";
      const health = el("span", { class: status === "ok" ? "ok" : "warn", text: status });
      facts.push(["Limits", [`${where} · `, health]]);
    }
    facts.push(["In flight", [String(doc.in_flight)]]);
    facts.push(["Up for", [span(doc.uptime_s)]]);
    const list = facts.flatMap(([name, parts]) => [el("dt", { text: name }), el("dd", {}, ...parts)]);
    $("#health-list").replaceChildren(...list);
  }

  function drawQuota(doc) {
    const quotas = Object.entries(doc.upstream_quota || {});
    const items = quotas.map(([name, q]) => {
      const percent = q.percent_remaining;
      const known = typeof percent === "number";
      const left = known ? `${percent.toFixed(1)} % left` : "unknown";
      const resets = q.resets_in_s === null || q.resets_in_s === undefined
        ? "" : `resets in ${span(q.resets_in_s)}`;
      const level = !known ? "" : percent <= 0 ? "empty" : percent < 20 ? "low" : "";
      const line = el("div", { class: "line" },
        el("span", { class: "name", text: name }),
        el("span", { text: left }),
        el("span", { class: "muted", text: resets, title: q.resets_at || "" }));
      return el("li", { "data-quota": name, "data-percent": known ? String(percent) : "" },
        line, bar(known ? percent / 100 : 0, level));
    });
    $("#quota-list").replaceChildren(...items);
    $("#quota-empty").hidden = items.length > 0;
  }

  function drawInFlight(doc) {
    const rows = (doc.requests_in_flight || []).map((r) => el("tr", { "data-key": r.key },
      el("td", { text: r.key, title: r.process ? `process ${r.process}` : "" }),
      el("td", { text: r.model }),
      el("td", { text: r.route }),
      el("td", { text: r.stage }),
      numberCell(r.age_s, span(r.age_s), "age_s"),
      numberCell(r.bytes_sent, bytes(r.bytes_sent), "bytes_sent")));
    $("#in-flight-count").textContent = String(rows.length);
    fillTable("#in-flight", rows);
  }

  function usageRows(doc) {
    const rows = [];
    const keys = (doc.usage && doc.usage.keys) || {};
    for (const [key, models] of Object.entries(keys)) {
      for (const [model, counts] of Object.entries(models)) {
        const row = { key, model };
        for (const counter of COUNTERS) row[counter] = Number(counts[counter] || 0);
        rows.push(row);
      }
    }
    return rows;
  }

  function sortRows(rows) {
    const { column, descending } = state.sort;
    const text = column === "key" || column === "model";
    const sign = descending ? -1 : 1;
    return rows.slice().sort((a, b) => {
      const order = text ? String(a[column]).localeCompare(String(b[column])) : a[column] - b[column];
      return sign * order || a.key.localeCompare(b.key) || a.model.localeCompare(b.model);
    });
  }

  function usageCells(row) {
    return COUNTERS.map((counter) => {
      const value = row[counter];
      const text = counter === "nano_aiu" ? credits(value) : compact(value);
      return numberCell(value, text, counter);
    });
  }

  function drawUsage(doc) {
    const usage = doc.usage;
    const period = $("#usage-period");
    if (doc.usage_error) period.textContent = doc.usage_error;
    else if (!usage) period.textContent = "This proxy keeps no usage ledger.";
    else period.textContent = `${usage.since} to ${usage.until} (UTC days), from the shared ledger`;
    for (const button of document.querySelectorAll(".days button")) {
      button.setAttribute("aria-pressed", String(Number(button.dataset.days) === state.days));
    }
    for (const th of document.querySelectorAll("#usage-table th[data-sort]")) {
      const sorted = th.dataset.sort === state.sort.column;
      th.setAttribute("aria-sort", !sorted ? "none" : state.sort.descending ? "descending" : "ascending");
    }
    const rows = usageRows(doc);
    const body = sortRows(rows).map((row) => el("tr", { "data-key": row.key, "data-model": row.model },
      el("th", { scope: "row", text: row.key }),
      el("td", { text: row.model }),
      ...usageCells(row)));
    fillTable("#usage", body);
    const total = { key: "", model: "" };
    for (const counter of COUNTERS) total[counter] = rows.reduce((sum, r) => sum + r[counter], 0);
    const foot = rows.length > 1
      ? [el("tr", {}, el("td", { text: "All" }), el("td", {}), ...usageCells(total))] : [];
    $("#usage-table tfoot").replaceChildren(...foot);
    drawChart(rows);
    drawSeats(usage);
  }

  // The same usage by seat (a person's own GitHub login), for an admin key.
  function drawSeats(usage) {
    const seats = Object.entries((usage && usage.seats) || {}).map(([seat, models]) => {
      let tokens = 0;
      let nano = 0;
      for (const counts of Object.values(models)) {
        tokens += Number(counts.input_tokens || 0) + Number(counts.output_tokens || 0);
        nano += Number(counts.nano_aiu || 0);
      }
      return el("span", { class: "seat", "data-seat": seat, "data-tokens": String(tokens),
        text: `${seat}: ${compact(tokens)} tokens, ${credits(nano)} credits` });
    });
    const line = $("#usage-seats");
    line.replaceChildren(...(seats.length ? [document.createTextNode("By seat: "), ...seats] : []));
    line.hidden = seats.length === 0;
  }

  function drawChart(rows) {
    const perKey = new Map();
    for (const row of rows) {
      const sum = perKey.get(row.key) || { tokens: 0, nano: 0 };
      sum.tokens += row.input_tokens + row.output_tokens;
      sum.nano += row.nano_aiu;
      perKey.set(row.key, sum);
    }
    const keys = [...perKey.entries()].filter(([, sum]) => sum.tokens > 0 || sum.nano > 0).sort((a, b) => b[1].tokens - a[1].tokens || a[0].localeCompare(b[0]));
    const most = { tokens: 1, nano: 1 };
    for (const [, sum] of keys) {
      most.tokens = Math.max(most.tokens, sum.tokens);
      most.nano = Math.max(most.nano, sum.nano);
    }
    const items = keys.map(([key, sum]) => el("li", { "data-key": key },
      el("div", { class: "line" }, el("span", { class: "name", text: key })),
      el("div", { class: "pair" },
        el("span", { class: "what", text: "tokens" }),
        bar(sum.tokens / most.tokens, "tokens"),
        el("span", { class: "value", text: compact(sum.tokens), title: exact(sum.tokens) })),
      el("div", { class: "pair" },
        el("span", { class: "what", text: "AI credits" }),
        bar(sum.nano / most.nano, "credits"),
        el("span", { class: "value", text: credits(sum.nano), title: `${exact(sum.nano)} nano AIU` }))));
    $("#usage-chart").replaceChildren(...items);
    $("#usage-chart").hidden = items.length === 0;
  }

  function drawErrors(doc) {
    const now = doc.now;
    const rows = (doc.recent_errors || []).map((e) => el("tr", { "data-key": e.key },
      el("td", { text: `${span(now - e.at)} ago`, title: iso(e.at) + (e.process ? ` · process ${e.process}` : "") }),
      el("td", { text: e.key }),
      el("td", { text: e.model }),
      el("td", { text: e.route }),
      el("td", { class: "num", text: e.status === null ? "-" : String(e.status) }),
      el("td", { text: e.outcome }),
      el("td", { text: e.cause })));
    $("#errors-count").textContent = String(rows.length);
    fillTable("#errors", rows);
  }

  function draw(doc) {
    state.last = doc;
    drawProcess(doc);
    drawHealth(doc);
    drawQuota(doc);
    drawInFlight(doc);
    drawUsage(doc);
    drawErrors(doc);
    // How many answers the page has drawn: something a test can wait on.
    document.body.dataset.polls = String(Number(document.body.dataset.polls || 0) + 1);
  }

  // Talking to the proxy.

  function say(text) {
    const message = $("#message");
    message.textContent = text || "";
    message.hidden = !text;
  }

  function askForKey(why) {
    clearTimeout(state.timer);
    say(why);
    $("#dashboard").hidden = true;
    $("#forget").hidden = true;
    $("#key-form").hidden = false;
    $("#key").value = "";
    $("#key").focus();
  }

  function schedule() {
    clearTimeout(state.timer);
    if (!document.hidden) state.timer = setTimeout(poll, POLL_MS);
  }

  async function poll() {
    clearTimeout(state.timer);
    const mine = ++state.poll;
    const key = sessionStorage.getItem(KEY_STORE);
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    let response;
    let doc;
    try {
      response = await fetch(`status.json?days=${state.days}`, {
        headers, cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
      });
      // An answer that is not JSON (a load balancer's error page) is no document.
      doc = response.status === 401 ? null : await response.json().catch(() => null);
    } catch (error) {
      if (mine !== state.poll) return;
      say(`The proxy cannot be reached (${error.message}); trying again.`);
      schedule();
      return;
    }
    if (mine !== state.poll) return;
    if (response.status === 401) {
      sessionStorage.removeItem(KEY_STORE);
      askForKey(key ? "The proxy refused this key (401 Unauthorized): check it and enter it again." : "");
      return;
    }
    if (!response.ok || !doc) {
      const detail = doc && doc.error ? doc.error.message : response.statusText || "not a status document";
      say(`The proxy answered ${response.status}: ${detail}`);
      schedule();
      return;
    }
    say("");
    $("#key-form").hidden = true;
    $("#dashboard").hidden = false;
    $("#forget").hidden = !key;
    draw(doc);
    schedule();
  }

  function start() {
    $("#key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("#key").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORE, key);
      $("#key").value = "";
      say("");
      poll();
    });
    $("#refresh").addEventListener("click", () => poll());
    $("#forget").addEventListener("click", () => {
      sessionStorage.removeItem(KEY_STORE);
      poll();
    });
    for (const button of document.querySelectorAll(".days button")) {
      button.addEventListener("click", () => {
        state.days = Number(button.dataset.days);
        sessionStorage.setItem(DAYS_STORE, String(state.days));
        poll();
      });
    }
    for (const th of document.querySelectorAll("#usage-table th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => {
        const column = th.dataset.sort;
        const text = column === "key" || column === "model";
        if (state.sort.column === column) state.sort.descending = !state.sort.descending;
        else state.sort = { column, descending: !text };
        if (state.last) drawUsage(state.last);
      });
    }
    document.addEventListener("visibilitychange", () => {
      if (document.hidden) clearTimeout(state.timer);
      else poll();
    });
    poll();
  }

  start();
})();
