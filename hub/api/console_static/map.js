// A small offline map: the city's own GeoJSON drawn into an SVG, pan and zoom by viewBox.
// Coordinates are projected equirectangularly around the first point shown, in metres,
// so corridor widths can be drawn in metres too. No tiles, no external resources.
// Point layers set with setPoints() are clustered by supercluster (vendor/) when more of
// their points are in view than an SVG draws fluidly, and redrawn for the view on pan/zoom.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const M_PER_DEG = 111320;
// supercluster's world is 2^zoom tiles of EXTENT units; a cluster gathers points within
// RADIUS units of it, that is about RADIUS screen pixels at the zoom we ask it for.
const CLUSTER = { radius: 48, extent: 512, maxZoom: 19, minPoints: 3 };
// Up to this many points of one layer in view are drawn one by one.
const CLUSTER_ABOVE = 400;

class CityMap {
  constructor(container) {
    this.container = container;
    container.textContent = "";
    this.svg = document.createElementNS(SVG_NS, "svg");
    this.svg.setAttribute("preserveAspectRatio", "xMidYMid meet");
    container.appendChild(this.svg);
    this.layers = {};
    this.origin = null;
    this.view = { x: -500, y: -500, w: 1000, h: 1000 };
    this.bounds = null;
    this.pointSets = {};
    this._frame = 0;
    const zoom = document.createElement("div");
    zoom.className = "zoom";
    for (const [label, factor] of [["+", 0.5], ["−", 2], ["⌂", 0]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      b.addEventListener("click", () => (factor ? this.zoomBy(factor) : this.fit()));
      zoom.appendChild(b);
    }
    container.appendChild(zoom);
    this._interaction();
    this._apply();
  }

  project(lon, lat) {
    if (!this.origin) this.origin = { lon, lat, k: Math.cos((lat * Math.PI) / 180) };
    const o = this.origin;
    return [(lon - o.lon) * M_PER_DEG * o.k, -(lat - o.lat) * M_PER_DEG];
  }

  layer(name) {
    if (!this.layers[name]) {
      const g = document.createElementNS(SVG_NS, "g");
      g.setAttribute("class", `lyr-${name}`);
      this.svg.appendChild(g);
      this.layers[name] = g;
    }
    return this.layers[name];
  }

  clear(name) {
    this.layer(name).textContent = "";
  }

  _extend(x, y) {
    const b = this.bounds || { x0: x, y0: y, x1: x, y1: y };
    this.bounds = { x0: Math.min(b.x0, x), y0: Math.min(b.y0, y), x1: Math.max(b.x1, x), y1: Math.max(b.y1, y) };
  }

  _pathData(coords, close) {
    let d = "";
    coords.forEach((c, i) => {
      const [x, y] = this.project(c[0], c[1]);
      this._extend(x, y);
      d += `${i ? "L" : "M"}${x.toFixed(1)} ${y.toFixed(1)}`;
    });
    return close ? `${d}Z` : d;
  }

  geometryPath(geometry) {
    if (!geometry) return "";
    const c = geometry.coordinates;
    switch (geometry.type) {
      case "LineString": return this._pathData(c, false);
      case "MultiLineString": return c.map((l) => this._pathData(l, false)).join("");
      case "Polygon": return c.map((r) => this._pathData(r, true)).join("");
      case "MultiPolygon": return c.map((p) => p.map((r) => this._pathData(r, true)).join("")).join("");
      default: return "";
    }
  }

  // Draw a FeatureCollection's lines and polygons; style(feature) may return a class and a fill.
  addGeoJSON(name, collection, style) {
    const g = this.layer(name);
    for (const feature of (collection && collection.features) || []) {
      if (!feature.geometry) continue;
      if (feature.geometry.type === "Point") {
        const [lon, lat] = feature.geometry.coordinates;
        this.addPoint(name, lon, lat, (style && style(feature).className) || "pt");
        continue;
      }
      const path = document.createElementNS(SVG_NS, "path");
      path.setAttribute("d", this.geometryPath(feature.geometry));
      const s = style ? style(feature) : {};
      if (s.className) path.setAttribute("class", s.className);
      if (s.fill) path.setAttribute("fill", s.fill);
      if (s.width) path.setAttribute("stroke-width", s.width);
      if (s.title) this._title(path, s.title);
      if (s.onClick) path.addEventListener("click", s.onClick);
      g.appendChild(path);
    }
  }

  addPath(name, coords, className, width) {
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", this._pathData(coords, false));
    if (className) path.setAttribute("class", className);
    if (width) path.setAttribute("stroke-width", width);
    this.layer(name).appendChild(path);
    return path;
  }

  addPoint(name, lon, lat, className, title, onClick, id) {
    const [x, y] = this.project(lon, lat);
    this._extend(x, y);
    const c = document.createElementNS(SVG_NS, "circle");
    c.setAttribute("cx", x.toFixed(1));
    c.setAttribute("cy", y.toFixed(1));
    c.setAttribute("r", this._radius());
    c.setAttribute("class", `pt ${className || ""}`);
    if (id) c.dataset.id = id;
    if (title) this._title(c, title);
    if (onClick) c.addEventListener("click", onClick);
    this.layer(name).appendChild(c);
    return c;
  }

  _title(el, text) {
    const t = document.createElementNS(SVG_NS, "title");
    t.textContent = text;
    el.appendChild(t);
  }

  _radius() {
    return (Math.max(this.view.w, this.view.h) / 140).toFixed(1);
  }

  fit(pad = 0.05) {
    const b = this.bounds;
    if (!b) return;
    const w = Math.max(b.x1 - b.x0, 200);
    const h = Math.max(b.y1 - b.y0, 200);
    this.view = { x: (b.x0 + b.x1) / 2 - (w * (1 + pad)) / 2, y: (b.y0 + b.y1) / 2 - (h * (1 + pad)) / 2, w: w * (1 + pad), h: h * (1 + pad) };
    this._apply();
  }

  centreOn(lon, lat, span = 1500) {
    const [x, y] = this.project(lon, lat);
    this.view = { x: x - span / 2, y: y - span / 2, w: span, h: span };
    this._apply();
  }

  zoomBy(factor, cx, cy) {
    const v = this.view;
    const px = cx === undefined ? v.x + v.w / 2 : cx;
    const py = cy === undefined ? v.y + v.h / 2 : cy;
    const w = Math.min(Math.max(v.w * factor, 50), 200000);
    const h = (v.h / v.w) * w;
    this.view = { x: px - ((px - v.x) * w) / v.w, y: py - ((py - v.y) * h) / v.h, w, h };
    this._apply();
  }

  // -- clustered point layers --

  // Replace a layer's points: [{id, lon, lat, className, title, state}]; onClick(id) on a point;
  // ring: the colour around the layer's clusters, so overlapping layers stay apart.
  setPoints(name, points, onClick, ring) {
    const old = this.pointSets[name];
    const set = { points: new Map(), onClick, ring, index: null, group: old ? old.group : null };
    for (const p of points) {
      if (p.lon === null || p.lat === null || p.lon === undefined || p.lat === undefined) continue;
      const [x, y] = this.project(p.lon, p.lat);
      this._extend(x, y);
      set.points.set(p.id, { ...p });
    }
    this.pointSets[name] = set;
    this.layer(name);
    this._schedule();
  }

  // Change some fields (state, className, lon/lat, title) of one point and redraw.
  updatePoint(name, id, changes) {
    const set = this.pointSets[name];
    const p = set && set.points.get(id);
    if (!p) return false;
    Object.assign(p, changes);
    set.index = null;
    this._schedule();
    return true;
  }

  pointsOf(name) {
    const set = this.pointSets[name];
    return set ? [...set.points.values()] : [];
  }

  _schedule() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this.renderPoints();
    });
  }

  _rect() {
    const r = this.svg.getBoundingClientRect();
    return { width: r.width || 800, height: r.height || 600 };
  }

  // Metres per screen pixel now (preserveAspectRatio meet: the larger of the two scales).
  _scale() {
    const rect = this._rect();
    return Math.max(this.view.w / rect.width, this.view.h / rect.height);
  }

  _unproject(x, y) {
    const o = this.origin;
    return [x / (M_PER_DEG * o.k) + o.lon, o.lat - y / M_PER_DEG];
  }

  // The lon/lat box on screen (a little beyond it) and supercluster's zoom for this scale.
  viewBounds() {
    const rect = this._rect();
    const scale = this._scale();
    const cx = this.view.x + this.view.w / 2;
    const cy = this.view.y + this.view.h / 2;
    const hw = (rect.width * scale) / 2 * 1.1;
    const hh = (rect.height * scale) / 2 * 1.1;
    const [w, n] = this._unproject(cx - hw, cy - hh);
    const [e, s] = this._unproject(cx + hw, cy + hh);
    const k = this.origin ? this.origin.k : 1;
    const zoom = Math.log2((M_PER_DEG * 360 * k) / (CLUSTER.extent * scale));
    return { bbox: [w, s, e, n], zoom: Math.max(0, Math.floor(zoom)) };
  }

  renderPoints() {
    if (!this.origin) return;
    const { bbox, zoom } = this.viewBounds();
    const inView = (p) => p.lon >= bbox[0] && p.lon <= bbox[2] && p.lat >= bbox[1] && p.lat <= bbox[3];
    for (const [name, set] of Object.entries(this.pointSets)) {
      // the points go in a group of their own, over whatever else the layer holds
      if (!set.group) {
        set.group = document.createElementNS(SVG_NS, "g");
        set.group.setAttribute("class", "pts");
        this.layer(name).appendChild(set.group);
      }
      const g = set.group;
      g.textContent = "";
      const visible = [...set.points.values()].filter(inView);
      if (visible.length <= CLUSTER_ABOVE) {
        for (const p of visible) this._drawPoint(name, set, p);
        continue;
      }
      if (!set.index) set.index = this._index(set);
      for (const f of set.index.getClusters(bbox, zoom)) {
        if (f.properties.cluster) this._drawCluster(name, set, f);
        else this._drawPoint(name, set, set.points.get(f.properties.id));
      }
    }
  }

  _index(set) {
    const index = new window.Supercluster({
      ...CLUSTER,
      map: (p) => ({ alarm: p.state === "alarm" ? 1 : 0, offline: p.state === "offline" ? 1 : 0 }),
      reduce: (acc, p) => { acc.alarm += p.alarm; acc.offline += p.offline; },
    });
    index.load([...set.points.values()].map((p) => ({
      type: "Feature", geometry: { type: "Point", coordinates: [p.lon, p.lat] }, properties: { id: p.id, state: p.state },
    })));
    return index;
  }

  _drawPoint(name, set, p) {
    const click = set.onClick ? () => set.onClick(p.id) : null;
    const c = this.addPoint(name, p.lon, p.lat, p.className, p.title, click, p.id);
    set.group.appendChild(c);
    return c;
  }

  _drawCluster(name, set, f) {
    const [lon, lat] = f.geometry.coordinates;
    const [x, y] = this.project(lon, lat);
    const props = f.properties;
    const state = props.alarm ? "alarm" : props.offline ? "offline" : "ok";
    const r = Number(this._radius()) * (1.8 + Math.log10(props.point_count));
    const g = document.createElementNS(SVG_NS, "g");
    g.setAttribute("class", `cluster st-${state}`);
    g.dataset.count = props.point_count;
    g.dataset.alarm = props.alarm;
    g.dataset.offline = props.offline;
    const c = document.createElementNS(SVG_NS, "circle");
    c.setAttribute("cx", x.toFixed(1));
    c.setAttribute("cy", y.toFixed(1));
    c.setAttribute("r", r.toFixed(1));
    c.setAttribute("class", `cluster st-${state}`);
    c.setAttribute("fill-opacity", "0.8");
    if (set.ring) {
      c.setAttribute("stroke", set.ring);
      c.setAttribute("stroke-width", "3");
      c.setAttribute("vector-effect", "non-scaling-stroke");
    }
    const text = document.createElementNS(SVG_NS, "text");
    text.setAttribute("x", x.toFixed(1));
    text.setAttribute("y", y.toFixed(1));
    text.setAttribute("font-size", (r * 0.8).toFixed(1));
    text.setAttribute("text-anchor", "middle");
    text.setAttribute("dominant-baseline", "central");
    text.setAttribute("fill", "#fff");
    text.setAttribute("pointer-events", "none");
    text.textContent = props.point_count_abbreviated;
    this._title(g, `${props.point_count} · ${props.alarm} ⚠ · ${props.offline} ⊘`);
    g.append(c, text);
    g.addEventListener("click", () => this.expand(name, props.cluster_id, lon, lat));
    set.group.appendChild(g);
    return g;
  }

  // Zoom in on a cluster far enough that it comes apart.
  expand(name, clusterId, lon, lat) {
    const set = this.pointSets[name];
    if (!set || !set.index) return;
    const zoom = Math.min(set.index.getClusterExpansionZoom(clusterId), CLUSTER.maxZoom + 1);
    const k = this.origin.k;
    const scale = (M_PER_DEG * 360 * k) / (CLUSTER.extent * 2 ** zoom);
    const rect = this._rect();
    this.centreOn(lon, lat, scale * Math.min(rect.width, rect.height) * 0.95);
  }

  _apply() {
    const v = this.view;
    this.svg.setAttribute("viewBox", `${v.x} ${v.y} ${v.w} ${v.h}`);
    if (Object.keys(this.pointSets).length) this._schedule();
    // Points keep a constant size on screen; panning does not change it, so thousands of
    // points are touched only when the zoom does.
    const r = this._radius();
    if (r === this._r) return;
    this._r = r;
    for (const c of this.svg.querySelectorAll("circle.pt")) c.setAttribute("r", r);
  }

  _toMap(evt) {
    const rect = this.svg.getBoundingClientRect();
    const v = this.view;
    const scale = Math.max(v.w / rect.width, v.h / rect.height);
    const offX = (rect.width * scale - v.w) / 2;
    const offY = (rect.height * scale - v.h) / 2;
    return { x: v.x - offX + (evt.clientX - rect.left) * scale, y: v.y - offY + (evt.clientY - rect.top) * scale, scale };
  }

  _interaction() {
    let drag = null;
    this.svg.addEventListener("pointerdown", (e) => {
      drag = { x: e.clientX, y: e.clientY, view: { ...this.view }, moved: false };
    });
    this.svg.addEventListener("pointermove", (e) => {
      if (!drag) return;
      const rect = this.svg.getBoundingClientRect();
      const scale = Math.max(drag.view.w / rect.width, drag.view.h / rect.height);
      const dx = e.clientX - drag.x;
      const dy = e.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      this.view = { ...drag.view, x: drag.view.x - dx * scale, y: drag.view.y - dy * scale };
      this._apply();
    });
    const end = () => { drag = null; };
    this.svg.addEventListener("pointerup", end);
    this.svg.addEventListener("pointerleave", end);
    this.svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const p = this._toMap(e);
      this.zoomBy(e.deltaY > 0 ? 1.25 : 0.8, p.x, p.y);
    }, { passive: false });
  }
}

window.CityMap = CityMap;
