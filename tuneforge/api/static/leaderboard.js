"use strict";
// Renders /leaderboard.json. Every string from the server is network data (hotkeys, scorer
// names): it is only ever placed with textContent / setAttribute, never parsed as HTML.
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const REFRESH_MS = 60000;
  let data = null;
  let selected = null;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function svg(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const key in attrs) node.setAttribute(key, String(attrs[key]));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function fmt(value) {
    return typeof value === "number" && isFinite(value) ? value.toFixed(3) : "–";
  }
  function shortKey(hotkey) {
    const text = String(hotkey);
    return text.length > 12 ? text.slice(0, 5) + "…" + text.slice(-4) : text;
  }
  function ago(iso) {
    const then = Date.parse(iso);
    if (!isFinite(then)) return "–";
    const s = Math.max(0, Math.round((Date.now() - then) / 1000));
    if (s < 90) return s + " s ago";
    if (s < 5400) return Math.round(s / 60) + " min ago";
    if (s < 129600) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function setStatus(state, text) {
    document.body.setAttribute("data-state", state);
    document.getElementById("status").textContent = text;
  }

  function renderTable() {
    const body = document.getElementById("miners");
    body.replaceChildren();
    for (const miner of data.miners) {
      const row = el("tr", "miner-row" + (miner.miner_hotkey === selected ? " selected" : ""));
      row.setAttribute("data-hotkey", miner.miner_hotkey);
      row.appendChild(el("td", "rank", String(miner.rank)));
      const who = el("td", "miner");
      who.appendChild(el("span", "uid", "uid " + miner.miner_uid + " "));
      const key = el("span", "hotkey", shortKey(miner.miner_hotkey));
      key.setAttribute("title", miner.miner_hotkey);
      who.appendChild(key);
      row.appendChild(who);
      row.appendChild(el("td", "num ema", fmt(miner.ema_final_score)));
      row.appendChild(el("td", "num mean", fmt(miner.mean_final_score)));
      row.appendChild(el("td", "num tracks", String(miner.tracks_scored)));
      const seen = el("td", "wide seen", ago(miner.last_seen));
      seen.setAttribute("title", String(miner.last_seen));
      row.appendChild(seen);
      row.addEventListener("click", function () { select(miner.miner_hotkey); });
      body.appendChild(row);
    }
  }

  function renderSelect() {
    const box = document.getElementById("miner-select");
    box.replaceChildren();
    for (const miner of data.miners) {
      const option = el("option", "", "#" + miner.rank + "  uid " + miner.miner_uid + "  " +
                        shortKey(miner.miner_hotkey));
      option.value = miner.miner_hotkey;
      option.selected = miner.miner_hotkey === selected;
      box.appendChild(option);
    }
  }

  function renderChart() {
    const box = document.getElementById("chart-box");
    box.replaceChildren();
    const miner = data.miners.find(function (m) { return m.miner_hotkey === selected; });
    if (!miner || data.scorers.length === 0) {
      box.appendChild(el("p", "muted", "No scorer data yet."));
      return;
    }
    const averages = {};
    for (const name of data.scorers) {
      let sum = 0, n = 0;
      for (const m of data.miners) {
        const v = m.scorer_means[name];
        if (typeof v === "number" && isFinite(v)) { sum += v; n += 1; }
      }
      averages[name] = n ? sum / n : null;
    }
    // No viewBox: horizontal positions are percentages of the box and text keeps its CSS size,
    // so the chart stays legible from a phone to a desktop without re-rendering on resize.
    // Each scorer is a name (left) and its value (right) above a full-width bar.
    const rowH = 40, top = 4, barY = 20, barH = 14;
    const height = top * 2 + rowH * data.scorers.length;
    const chart = svg("svg", {
      id: "chart", width: "100%", height: height, role: "img",
      "aria-label": "Mean of each scorer for the selected miner",
    });
    chart.appendChild(svg("title", {}, "Scorer means of " + miner.miner_hotkey));
    const pct = function (v) { return (Math.max(0, Math.min(1, v)) * 100).toFixed(2) + "%"; };
    data.scorers.forEach(function (name, i) {
      const y = top + i * rowH;
      const value = miner.scorer_means[name];
      const known = typeof value === "number" && isFinite(value);
      const row = svg("g", { "class": "scorer", "data-scorer": name });
      row.appendChild(svg("text", { "class": "label", x: 0, y: y + 14 },
                          name.length > 34 ? name.slice(0, 33) + "…" : name));
      row.appendChild(svg("text", { "class": "value", x: "100%", y: y + 14,
                                    "text-anchor": "end" }, known ? value.toFixed(2) : "n/a"));
      if (!known) {
        // null = the scorer did not run for this miner: "not measured", never an empty bar.
        row.setAttribute("class", "scorer not-measured");
        row.appendChild(svg("text", { "class": "na", x: 0, y: y + barY + barH - 2 },
                            "n/a (not measured)"));
        chart.appendChild(row);
        return;
      }
      row.appendChild(svg("rect", { "class": "track", x: 0, y: y + barY, width: "100%",
                                    height: barH, rx: 3 }));
      row.appendChild(svg("rect", { "class": "bar", x: 0, y: y + barY,
                                    width: pct(value), height: barH, rx: 3 }));
      const avg = averages[name];
      if (avg !== null) {
        row.appendChild(svg("line", { "class": "avg", x1: pct(avg), x2: pct(avg),
                                      y1: y + barY - 3, y2: y + barY + barH + 3 }));
      }
      chart.appendChild(row);
    });
    box.appendChild(chart);
  }

  function select(hotkey) {
    selected = hotkey;
    renderTable();
    renderSelect();
    renderChart();
  }

  function render() {
    document.getElementById("summary").textContent =
      data.miners_total + " miners · " + data.tracks_total + " tracks scored · updated " +
      new Date(Date.parse(data.generated_at)).toLocaleString();
    if (data.miners.length === 0) {
      setStatus("empty", "No scores have been published yet.");
    } else {
      setStatus("ready", "");
    }
    const known = data.miners.some(function (m) { return m.miner_hotkey === selected; });
    if (!known) selected = data.miners.length ? data.miners[0].miner_hotkey : null;
    select(selected);
  }

  async function load() {
    try {
      const response = await fetch("leaderboard.json", { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      data = await response.json();
      render();
    } catch (error) {
      setStatus("error", "Could not load the leaderboard (" + error.message + "). Retrying…");
    }
  }

  document.getElementById("miner-select").addEventListener("change", function (event) {
    select(event.target.value);
  });
  load();
  setInterval(load, REFRESH_MS);
})();
