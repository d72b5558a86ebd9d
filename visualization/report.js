// The run report's one piece of glue: selecting a node in the embedding map (a click, or an id typed in) redraws
// the attention explorer for that node with Plotly.react, from the attention embedded in #report-data.
"use strict";

async function unpack(element) {
  // the data is gzipped JSON in base64 (see report.py): decompressed by the browser, no library needed
  const bytes = Uint8Array.from(atob(element.textContent), (c) => c.charCodeAt(0));
  const text = await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
  return JSON.parse(text);
}

unpack(document.getElementById("report-data")).then((data) => {
  const mapIndex = new Map(data.targets.map((node, k) => [node, k]));
  const state = { node: data.initial_node, layer: data.heads.length - 1, head: 0 };
  const WIDEST = 14; // pixels: no line is wider

  function incomingEdges(node) {
    // [{source, attention}] of the edges into node (its self-loop included) for the chosen layer and head
    const k = mapIndex.get(node);
    const heads = data.heads[state.layer];
    const edges = [];
    for (let e = data.offsets[k]; e < data.offsets[k + 1]; e++) {
      edges.push({ source: data.sources[e], attention: data.attention[state.layer][e * heads + state.head] });
    }
    return edges;
  }

  function describe(node) {
    const wrong = data.predicted[node] !== data.labels[node];
    return `node ${node} · class ${data.labels[node]} · predicted ${data.predicted[node]}` +
      ` (${Math.round(100 * data.confidence[node])}%)` + (wrong ? " · misclassified" : "");
  }

  function neighbourhoodTraces(node, edges) {
    // neighbours on a circle grouped by class, the node in the centre; one line per edge (Plotly gives a line
    // trace a single width), a grey one of the uniform width under each
    // uniform attention gets lines from 6 px (a few neighbours) down to 1 px (a hub), a peaked head proportionally
    // wider ones, up to WIDEST
    const uniform = 1 / edges.length;
    const uniformWidth = Math.min(6, Math.max(1, 24 / edges.length));
    const scale = Math.min(WIDEST / Math.max(...edges.map((edge) => edge.attention)), uniformWidth / uniform);
    const others = edges.filter((edge) => edge.source !== node)
      .sort((a, b) => data.labels[a.source] - data.labels[b.source] || a.source - b.source);
    const angle = (i) => Math.PI / 2 - (2 * Math.PI * i) / Math.max(others.length, 1);
    const line = (edge, i, width, colour) => ({
      x: [Math.cos(angle(i)), 0], y: [Math.sin(angle(i)), 0], mode: "lines", hoverinfo: "skip",
      line: { width: width, color: colour },
    });
    const traces = others.map((edge, i) => line(edge, i, scale * uniform, "rgba(150,150,150,0.35)"))
      .concat(others.map((edge, i) => line(edge, i, scale * edge.attention, "rgba(34,34,34,0.8)")));
    const self = edges.find((edge) => edge.source === node);
    const marker = (nodes) => ({
      color: nodes.map((n) => data.colours[data.labels[n]]),
      symbol: nodes.map((n) => (data.predicted[n] !== data.labels[n] ? "x" : "circle")),
    });
    traces.push({
      x: others.map((_, i) => Math.cos(angle(i))), y: others.map((_, i) => Math.sin(angle(i))),
      mode: "markers+text", text: others.map((edge) => String(edge.source)), textposition: "top center",
      hovertext: others.map((edge) => `${describe(edge.source)}<br>attention ${edge.attention.toFixed(4)}` +
        ` (uniform ${uniform.toFixed(4)})`),
      hoverinfo: "text", marker: { size: 14, line: { width: 1, color: "white" }, ...marker(others.map((e) => e.source)) },
    });
    traces.push({
      x: [0], y: [0], mode: "markers", hoverinfo: "text",
      hovertext: [`${describe(node)}<br>attention to itself ${self ? self.attention.toFixed(4) : "-"}`],
      marker: { size: 26, line: { width: 2, color: "#222" }, ...marker([node]) },
    });
    return traces;
  }

  function barTraces(node, edges) {
    const sorted = edges.slice().sort((a, b) => b.attention - a.attention);
    const names = sorted.map((edge) => (edge.source === node ? `${node} (self)` : String(edge.source)));
    return [
      {
        type: "bar", x: names, y: sorted.map((edge) => edge.attention),
        hovertext: sorted.map((edge) => describe(edge.source)),
        marker: {
          color: sorted.map((edge) => data.colours[data.labels[edge.source]]),
          pattern: { shape: sorted.map((edge) => (data.predicted[edge.source] !== data.labels[edge.source] ? "/" : "")) },
        },
      },
      {
        type: "scatter", mode: "lines", x: [names[0], names[names.length - 1]], y: [1 / edges.length, 1 / edges.length],
        name: "uniform", line: { dash: "dash", color: "#222" }, hoverinfo: "name+y",
      },
    ];
  }

  function explore(node) {
    const message = document.getElementById("explorer-message");
    if (!mapIndex.has(node)) {
      message.textContent = `node ${node} is not on this page's map`;
      return false;
    }
    message.textContent = "";
    state.node = node;
    const edges = incomingEdges(node);
    const graphDiv = document.getElementById("explorer-graph");
    const barsDiv = document.getElementById("explorer-bars");
    Plotly.react(graphDiv, neighbourhoodTraces(node, edges), graphDiv.layout);
    Plotly.react(barsDiv, barTraces(node, edges), barsDiv.layout);
    const map = document.getElementById("embedding-map");
    const k = mapIndex.get(node);
    Plotly.restyle(map, { x: [[data.map_x[k]]], y: [[data.map_y[k]]] }, [map.data.length - 1]);
    document.getElementById("explorer-title").textContent =
      `${describe(node)} · degree ${data.degrees[node]} · layer ${state.layer} head ${state.head}`;
    document.getElementById("explorer-reading").textContent = data.readings[k];
    document.getElementById("explorer-command").textContent = data.command + node;
    document.getElementById("node-input").value = node;
    return true;
  }

  document.getElementById("embedding-map").on("plotly_click", (event) => explore(Number(event.points[0].customdata[0])));
  document.getElementById("node-button").addEventListener("click", () => {
    explore(Number(document.getElementById("node-input").value));
  });
  document.getElementById("node-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter") explore(Number(event.target.value));
  });
  const select = document.getElementById("head-select");
  select.value = `${state.layer}:${state.head}`;
  select.addEventListener("change", () => {
    [state.layer, state.head] = select.value.split(":").map(Number);
    explore(state.node);
  });
  window.gatReport = { explore: explore, state: state, data: data };
  explore(state.node);
  document.body.dataset.ready = "true"; // for tests: the explorer is drawn
});
