// The readiness self-test page: measures what a browser can, posts raw observations to the
// server that served it, and shows where the judged report is. Loads nothing from elsewhere.
// The server turns the observations into metrics with the agent's own rules; this script only
// observes (frames, audio windows, byte counts, round trips).
"use strict";
(() => {
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const W = cfg.words;
  const $ = (id) => document.getElementById(id);
  const now = () => performance.now() / 1000;
  const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
  const out = { profile: cfg.profile, lang: cfg.lang, labels: cfg.labels, key: cfg.key };
  const STEPS = ["browser", "camera", "microphone", "speakers", "latency", "bandwidth"];
  const done = new Set();

  // ---------------------------------------------------------------- page state
  function step(name, state, text) {
    const li = $("step-" + name);
    li.dataset.state = state;
    li.querySelector(".state").textContent = text || W[state] || state;
    if (state === "done" || state === "problem") done.add(name);
    $("bar").value = Math.round((100 * done.size) / STEPS.length);
  }
  function advise(code) {
    const text = W["advice_" + code];
    if (!text) return;
    const li = document.createElement("li");
    li.textContent = text;
    li.dataset.code = code;
    $("advice-list").appendChild(li);
    $("advice").hidden = false;
  }

  // ---------------------------------------------------------------- browser facts
  function browserFacts() {
    const ua = navigator.userAgent;
    let name = "", version = "";
    const brands = (navigator.userAgentData && navigator.userAgentData.brands) || [];
    const real = brands.filter((b) => !/not.?a.?brand/i.test(b.brand));
    const pick = real.find((b) => b.brand !== "Chromium") || real[0];
    if (pick) { name = pick.brand; version = pick.version; }
    else {
      for (const [re, n] of [[/Firefox\/([\d.]+)/, "Firefox"], [/Edg\/([\d.]+)/, "Edge"], [/Chrome\/([\d.]+)/, "Chrome"],
        [/Version\/([\d.]+).*Safari/, "Safari"]]) {
        const m = ua.match(re);
        if (m) { name = n; version = m[1]; break; }
      }
    }
    const platform = ((navigator.userAgentData && navigator.userAgentData.platform) || navigator.platform || "").slice(0, 60);
    const facts = {
      name: name.slice(0, 40), version: String(version).slice(0, 40), platform,
      mobile: !!((navigator.userAgentData && navigator.userAgentData.mobile) || /Mobi|Android/i.test(ua)),
      webrtc: typeof RTCPeerConnection === "function", secure_context: !!window.isSecureContext,
    };
    if (navigator.hardwareConcurrency) facts.cpu_threads = navigator.hardwareConcurrency;
    if (navigator.deviceMemory) facts.memory_class_gb = navigator.deviceMemory;
    return facts;
  }

  // ---------------------------------------------------------------- devices
  function stateOf(err) {
    const n = err && err.name;
    if (n === "NotAllowedError" || n === "SecurityError" || n === "PermissionDeniedError") return "denied";
    if (n === "NotFoundError" || n === "DevicesNotFoundError" || n === "OverconstrainedError") return "not_found";
    if (n === "NotReadableError" || n === "TrackStartError" || n === "AbortError") return "in_use";
    return "error";
  }
  function failure(kind, err) {
    const state = stateOf(err);
    advise(`${state}_${kind}`);
    return { state, error: String((err && (err.name + ": " + err.message)) || err).slice(0, 300) };
  }
  async function media(constraints) {
    return navigator.mediaDevices.getUserMedia(constraints);
  }
  const videoWanted = () => ({
    facingMode: "user", // a phone's front camera: the one a call uses
    width: cfg.camera.width ? { ideal: cfg.camera.width } : undefined,
    height: cfg.camera.height ? { ideal: cfg.camera.height } : undefined,
  });
  const audioWanted = { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 };

  // One permission prompt for both where possible; where that fails, each on its own tells which.
  async function openDevices(video, audio) {
    if (!video && !audio) return {};
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      advise(window.isSecureContext ? "unsupported" : "insecure");
      const why = { state: "unsupported", error: window.isSecureContext ? "no getUserMedia" : "not a secure context (https or localhost)" };
      return { video: why, audio: why };
    }
    try {
      const s = await media({ video: video && videoWanted(), audio: audio && audioWanted });
      return { video: new MediaStream(s.getVideoTracks()), audio: new MediaStream(s.getAudioTracks()) };
    } catch (e) {
      const res = {};
      for (const [kind, c] of [["video", { video: videoWanted() }], ["audio", { audio: audioWanted }]]) {
        if (!(kind === "video" ? video : audio)) continue;
        try { res[kind] = await media(c); } catch (e2) { res[kind] = failure(kind === "video" ? "camera" : "microphone", e2); }
      }
      return res;
    }
  }

  // ---------------------------------------------------------------- camera
  const AW = 640, AH = 360; // the agent's analysis size (frames.ANALYSIS_SIZE)
  function analyse(px, prev, detail) {
    const n = AW * AH, gray = new Uint8Array(n);
    let sum = 0, black = 0, bright = 0, diff = 0;
    for (let i = 0, j = 0; i < n; i++, j += 4) {
      const g = (px[j] * 4899 + px[j + 1] * 9617 + px[j + 2] * 1868 + 8192) >> 14; // OpenCV's BGR2GRAY
      gray[i] = g; sum += g;
      if (g <= 25) black++; else if (g >= 230) bright++;
      if (prev) diff += Math.abs(g - prev[i]);
    }
    const f = { gray, b: sum / n / 255, k: black / n, w: bright / n, d: prev ? diff / n / 255 : null };
    if (detail) {
      // Laplacian variance (OpenCV ksize 1) and Immerkaer's noise estimate, inner pixels
      let ls = 0, ls2 = 0, ns = 0, cnt = 0;
      for (let y = 1; y < AH - 1; y++) {
        for (let x = 1; x < AW - 1; x++) {
          const i = y * AW + x, c = gray[i], up = gray[i - AW], dn = gray[i + AW], l = gray[i - 1], r = gray[i + 1];
          const lap = up + dn + l + r - 4 * c;
          ls += lap; ls2 += lap * lap; cnt++;
          const m = gray[i - AW - 1] + gray[i - AW + 1] + gray[i + AW - 1] + gray[i + AW + 1] - 2 * (up + dn + l + r) + 4 * c;
          ns += Math.abs(m);
        }
      }
      const mean = ls / cnt;
      f.s = ls2 / cnt - mean * mean;
      f.n = Math.sqrt(Math.PI / 2) * ns / (6 * cnt) / 255;
    }
    return f;
  }

  async function camera(stream, warmup = 0.5, window = 3.0) {
    if (!(stream instanceof MediaStream)) return stream;
    const started = now();
    const video = $("video");
    $("preview").hidden = false;
    video.srcObject = stream;
    const track = stream.getVideoTracks()[0];
    const res = { state: "ok", requested: { width_px: cfg.camera.width, height_px: cfg.camera.height },
      t: [], brightness: [], black_share: [], bright_share: [], diff: [], sharpness: [], noise: [] };
    const claimed = track.getSettings ? track.getSettings().frameRate : 0;
    if (claimed) res.claimed_fps = Math.min(claimed, 1000);
    try { await video.play(); } catch (e) { /* autoplay of a muted stream is allowed; frames tell */ }
    const canvas = document.createElement("canvas");
    canvas.width = AW; canvas.height = AH;
    const g = canvas.getContext("2d", { willReadFrequently: true });
    let prev = null, first = null, startPresented = null, lastPresented = null, tStart = null, tLast = null, count = 0;
    await new Promise((resolve) => {
      const deadline = setTimeout(resolve, (warmup + window + 3) * 1000);
      const onFrame = (ts, meta) => {
        const t = ts / 1000;
        if (first === null) { first = t; res.first_frame_ms = Math.round((now() - started) * 1000); }
        const w = (meta && meta.width) || video.videoWidth, h = (meta && meta.height) || video.videoHeight;
        if (w && h) { res.width_px = w; res.height_px = h; }
        const presented = meta && meta.presentedFrames !== undefined ? meta.presentedFrames
          : (video.mozPresentedFrames !== undefined ? video.mozPresentedFrames : null);
        if (t >= first + warmup) {
          if (tStart === null) { tStart = t; startPresented = presented; }
          g.drawImage(video, 0, 0, AW, AH);
          const f = analyse(g.getImageData(0, 0, AW, AH).data, prev, count % 5 === 0);
          res.t.push(+(t - first).toFixed(4)); res.brightness.push(f.b); res.black_share.push(f.k); res.bright_share.push(f.w);
          if (f.d !== null) res.diff.push(f.d);
          if (f.s !== undefined) { res.sharpness.push(f.s); res.noise.push(f.n); }
          prev = f.gray; count++; tLast = t; lastPresented = presented;
          if (t >= tStart + window) { clearTimeout(deadline); resolve(); return; }
        }
        next();
      };
      const next = video.requestVideoFrameCallback
        ? () => video.requestVideoFrameCallback(onFrame)
        : (() => { // no frame callbacks (older Firefox): poll, and count a frame when the picture's paint count moves
          let seen = -1;
          const poll = (ts) => {
            const painted = video.mozPaintedFrames !== undefined ? video.mozPaintedFrames
              : (video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().totalVideoFrames : 0);
            if (video.readyState >= 2 && painted !== seen) { seen = painted; onFrame(ts, { presentedFrames: painted }); }
            else requestAnimationFrame(poll);
          };
          return () => requestAnimationFrame(poll);
        })();
      next();
    });
    if (tStart !== null && tLast > tStart && startPresented !== null && lastPresented > startPresented) {
      res.presented_frames = lastPresented - startPresented;
      res.span_s = +(tLast - tStart).toFixed(4);
    }
    res.duration_s = +(now() - started).toFixed(3);
    stream.getTracks().forEach((tr) => tr.stop());
    $("preview").hidden = true;
    return res;
  }

  // ---------------------------------------------------------------- microphone
  async function microphone(stream, ac, seconds = 2.0) {
    if (!(stream instanceof MediaStream)) return stream;
    const started = now();
    const rate = ac.sampleRate, win = Math.round(rate * 0.02), settle = Math.round(rate * 0.1);
    const minRun = Math.max(2, Math.round(12 * rate / 48000)); // audio.clipping_runs
    const res = { state: "ok", rate_hz: rate, samples: 0, window_rms: [], peak: 0, clipping_runs: 0, sum: 0, all_zero: true };
    const track = stream.getAudioTracks()[0];
    const st = track.getSettings ? track.getSettings() : {};
    res.processing_off = !st.echoCancellation && !st.noiseSuppression && !st.autoGainControl;
    const src = ac.createMediaStreamSource(stream);
    const proc = ac.createScriptProcessor(4096, 1, 1);
    const mute = ac.createGain();
    mute.gain.value = 0;
    let skipped = 0, acc = 0, accN = 0, run = 0;
    const total = Math.round(rate * seconds);
    await new Promise((resolve) => {
      const deadline = setTimeout(resolve, (seconds + 3) * 1000);
      proc.onaudioprocess = (ev) => {
        const x = ev.inputBuffer.getChannelData(0);
        for (let i = 0; i < x.length && res.samples < total; i++) {
          if (skipped < settle) { skipped++; continue; }
          const v = x[i], a = Math.abs(v);
          res.samples++; res.sum += v;
          if (v !== 0) res.all_zero = false;
          if (a > res.peak) res.peak = a;
          if (a >= 0.999) { run++; } else { if (run >= minRun) res.clipping_runs++; run = 0; }
          acc += v * v; accN++;
          if (accN === win) { res.window_rms.push(Math.sqrt(acc / win)); acc = 0; accN = 0; }
        }
        if (res.samples >= total) { clearTimeout(deadline); resolve(); }
      };
      src.connect(proc); proc.connect(mute); mute.connect(ac.destination);
    });
    if (run >= minRun) res.clipping_runs++;
    proc.onaudioprocess = null;
    src.disconnect(); proc.disconnect(); mute.disconnect();
    stream.getTracks().forEach((tr) => tr.stop());
    res.duration_s = +(now() - started).toFixed(3);
    return res;
  }

  // ---------------------------------------------------------------- speakers
  function tone(ac, hz = 440, seconds = 1.2) {
    const t0 = ac.currentTime, osc = ac.createOscillator(), gain = ac.createGain();
    osc.frequency.value = hz;
    gain.gain.setValueAtTime(0, t0);
    gain.gain.linearRampToValueAtTime(0.1, t0 + 0.05); // -20 dBFS: audible, not loud
    gain.gain.setValueAtTime(0.1, t0 + seconds - 0.05);
    gain.gain.linearRampToValueAtTime(0, t0 + seconds);
    osc.connect(gain); gain.connect(ac.destination);
    osc.start(t0); osc.stop(t0 + seconds);
    return new Promise((resolve) => { osc.onended = () => resolve(ac.state === "running" && ac.currentTime >= t0 + seconds * 0.9); });
  }
  async function speakers(ac) {
    const started = now(), hz = 440;
    // A browser without a sound output never gets its audio running: then nothing was played.
    if (ac.state !== "running") await Promise.race([ac.resume().catch(() => {}), sleep(2)]);
    const played = ac.state === "running" && await Promise.race([tone(ac, hz), sleep(5).then(() => false)]);
    $("hear").hidden = false;
    $("heard-yes").focus();
    const heard = await new Promise((resolve) => {
      const t = setTimeout(() => resolve(undefined), 120000);
      const answer = (v) => () => { clearTimeout(t); resolve(v); };
      $("heard-yes").onclick = answer(true);
      $("heard-no").onclick = answer(false);
      $("heard-again").onclick = () => tone(ac, hz);
    });
    $("hear").hidden = true;
    const res = { state: "ok", played, tone_hz: hz, duration_s: +(now() - started).toFixed(3) };
    if (heard !== undefined) res.heard = heard;
    if (heard === false) advise("not_heard");
    return res;
  }

  // ---------------------------------------------------------------- latency
  async function postJSON(url, body) {
    const r = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), cache: "no-store" });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw Object.assign(new Error(data.error || "HTTP " + r.status), { status: r.status });
    return data;
  }
  function waitFor(target, event, test, seconds) {
    return new Promise((resolve, reject) => {
      if (test()) return resolve();
      const t = setTimeout(() => reject(new Error(event + " timed out")), seconds * 1000);
      target.addEventListener(event, function on() { if (test()) { clearTimeout(t); target.removeEventListener(event, on); resolve(); } });
    });
  }
  // One data channel to the server's echoing peer, kept open from the latency step through the
  // bandwidth step: its probes while the link is loaded give the latency increase (bufferbloat).
  let probe = null;
  async function openProbe() {
    const pc = new RTCPeerConnection({ iceServers: [] }); // nothing contacted but this server
    try {
      const ch = pc.createDataChannel("probe", { ordered: false, maxRetransmits: 0 });
      await pc.setLocalDescription(await pc.createOffer());
      await waitFor(pc, "icegatheringstatechange", () => pc.iceGatheringState === "complete", 3).catch(() => {});
      const answer = await postJSON("/__selftest/rtc", { type: pc.localDescription.type, sdp: pc.localDescription.sdp });
      await pc.setRemoteDescription(answer);
      await waitFor(ch, "open", () => ch.readyState === "open", 5);
      const p = { pc, ch, handler: null };
      ch.onmessage = (ev) => { if (p.handler) p.handler(String(ev.data), now()); };
      return p;
    } catch (e) {
      pc.close();
      throw e;
    }
  }
  // Probes every `interval` s, `count` of them or until `until.stop`; answers later than `linger`
  // after the last are lost. A tag per stream keeps late echoes of an earlier stream out.
  async function probeStream(p, count, interval, linger, until, onAnswer) {
    const tag = Math.random().toString(36).slice(2, 8), sent = [], rtt = [], arrival = [];
    p.handler = (data, t) => {
      const [tg, s] = data.split(" "), seq = parseInt(s, 10);
      if (tg === tag && sent[seq] !== undefined && rtt[seq] === null) {
        rtt[seq] = +((t - sent[seq]) * 1000).toFixed(3);
        arrival.push(seq);
        if (onAnswer) onAnswer(sent[seq], t - sent[seq]);
      }
    };
    const t0 = now();
    for (let i = 0; (count === null || i < count) && !(until && until.stop); i++) {
      const wait = t0 + i * interval - now();
      if (wait > 0) await sleep(wait);
      sent[i] = now();
      rtt[i] = null;
      try { p.ch.send(tag + " " + i); } catch (e) { break; }
    }
    await sleep(linger);
    p.handler = null;
    return { sent, rtt, arrival };
  }
  async function webrtcProbe(seconds, interval) {
    probe = await openProbe();
    const r = await probeStream(probe, Math.round(seconds / interval), interval, 1.0); // as the agent's linger
    return { method: "webrtc", interval_ms: interval * 1000, rtt_ms: r.rtt, arrival: r.arrival };
  }
  async function httpProbe(count, interval) {
    const rtt = [], arrival = [];
    await fetch("/__selftest/ping", { cache: "no-store" }).catch(() => {}); // open the connection first
    for (let i = 0; i < count; i++) {
      const t = now();
      try { await fetch("/__selftest/ping", { cache: "no-store" }); rtt.push(+((now() - t) * 1000).toFixed(3)); arrival.push(i); }
      catch (e) { rtt.push(null); }
      const wait = t + interval - now();
      if (wait > 0) await sleep(wait);
    }
    return { method: "http", interval_ms: interval * 1000, rtt_ms: rtt, arrival };
  }
  async function latency() {
    const started = now();
    let res;
    if (typeof RTCPeerConnection === "function") {
      try { res = await webrtcProbe(5.0, 0.02); } catch (e) { res = { webrtc_error: String(e.message || e).slice(0, 300) }; }
    } else res = { webrtc_error: "no RTCPeerConnection in this browser" };
    if (!res.method) {
      advise("tcp_only");
      res = Object.assign(await httpProbe(20, 0.1), { webrtc_error: res.webrtc_error });
    }
    res.state = "ok";
    res.duration_s = +(now() - started).toFixed(3);
    return res;
  }

  // ---------------------------------------------------------------- bandwidth
  // When to stop: the agent's rule (src/readiness/measure/estimator.py is_steady) with slices one
  // loaded round trip long (0.25-1 s) and the probes' round trip no longer growing (the queue has
  // filled), but the last four slices within ±10 %, not ±5 %: a browser's counts are lumpier than
  // the kernel's (reads arrive in chunks, upload progress comes in steps), and it
  // cannot see TCP's holes. The rate itself is the agent's estimator's, on the server.
  const SLICE = 0.25, MAX_SLICE = 1.0, TICK = 0.05;
  const median = (xs) => { const v = [...xs].sort((a, b) => a - b), n = v.length; return n ? (n % 2 ? v[(n - 1) / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : null; };
  const recentRtt = (rtts, from, to) => median(rtts.filter(([t]) => t >= from && t <= to).map(([, r]) => r));
  function isSteady(ticks, rtts) {
    const tEnd = ticks[ticks.length - 1][0];
    const slice = Math.max(SLICE, Math.min(MAX_SLICE, recentRtt(rtts, tEnd - 0.5, tEnd) || 0));
    if (tEnd - ticks[0][0] < 4 * slice) return false;
    const at = (t) => { let best = ticks[0]; for (const tk of ticks) { if (tk[0] <= t + 1e-9) best = tk; else break; } return best; };
    const rates = [];
    for (let k = 4; k > 0; k--) {
      const a = at(tEnd - k * slice), b = at(tEnd - (k - 1) * slice);
      if (b[0] <= a[0]) return false;
      rates.push((b[1] - a[1]) / (b[0] - a[0]));
    }
    const mean = rates.reduce((x, y) => x + y, 0) / 4;
    if (mean <= 0 || Math.max(...rates.map((r) => Math.abs(r - mean))) > 0.1 * mean) return false;
    const now_ = recentRtt(rtts, tEnd - slice, tEnd), before = recentRtt(rtts, tEnd - 2 * slice, tEnd - slice);
    return now_ === null || before === null || now_ - before <= Math.max(0.010, 0.1 * before);
  }
  async function transfer(direction, streams = 4, minS = 1.5, maxS = 4.0) {
    const ctrl = new AbortController(), errors = new Set(), t0 = now(), ticks = [[0, 0]];
    const until = { stop: false }; // probes every 50 ms while loaded, as the agent's bandwidth check
    const rtts = []; // (seconds since t0, round trip s) of the probes under load, as they answer
    const loaded = probe ? probeStream(probe, null, 0.05, 0.5, until, (sent, rtt) => rtts.push([sent - t0, rtt])) : null;
    let bytes = 0, stop = false;
    const down = async () => {
      while (!stop) {
        const r = await fetch("/__down?bytes=25000000", { signal: ctrl.signal, cache: "no-store" });
        if (!r.ok) throw new Error("HTTP " + r.status + " from /__down");
        const reader = r.body.getReader();
        for (;;) { const { done: end, value } = await reader.read(); if (end) break; bytes += value.length; }
      }
    };
    // bytes count as the browser's upload progress says they went out, not once per finished POST:
    // four streams sharing a link finish their POSTs together, so whole POSTs made a slice of
    // nothing beside a slice of four of them and read the rate 8-16 % low (fetch has no upload progress)
    const post = (size) => new Promise((resolve, reject) => {
      const x = new XMLHttpRequest();
      let counted = 0;
      const count = (loaded) => { bytes += loaded - counted; counted = loaded; };
      const cancel = () => x.abort();
      ctrl.signal.addEventListener("abort", cancel, { once: true });
      const done = (fn) => { ctrl.signal.removeEventListener("abort", cancel); fn(); };
      x.upload.onprogress = (e) => count(Math.min(e.loaded, size));
      x.onload = () => done(() => {
        if (x.status < 200 || x.status > 299) reject(new Error("HTTP " + x.status + " from /__up"));
        else { count(size); resolve(); }
      });
      x.onerror = () => done(() => reject(new Error("network error from /__up")));
      x.onabort = () => done(resolve);
      x.open("POST", "/__up");
      x.send(new Blob([new Uint8Array(size)]));
    });
    const up = async () => {
      let size = 256 * 1024;
      while (!stop) {
        const t = now();
        await post(size);
        if (now() - t < 0.2 && size < 8 * 1024 * 1024) size *= 2;
      }
    };
    const workers = Array.from({ length: streams }, () => (direction === "down" ? down() : up()).catch((e) => {
      if (!stop) errors.add(String(e.message || e).slice(0, 200));
    }));
    let alive = streams;
    workers.forEach((w) => w.then(() => alive--));
    for (;;) {
      await sleep(TICK);
      const t = now() - t0;
      ticks.push([+t.toFixed(4), bytes]);
      if ((t >= minS && isSteady(ticks, rtts)) || t >= maxS || alive === 0) break;
    }
    stop = true;
    ctrl.abort();
    until.stop = true;
    const res = { ticks, streams, errors: [...errors] };
    if (loaded) {
      const r = await loaded;
      res.probes = r.sent.map((t, i) => [+Math.max(0, t - t0).toFixed(4), r.rtt[i]]);
    }
    return res;
  }
  async function bandwidth() {
    const started = now();
    const res = { state: "ok", down: await transfer("down") };
    res.up = await transfer("up");
    res.duration_s = +(now() - started).toFixed(3);
    if (probe) { probe.pc.close(); probe = null; }
    return res;
  }

  // ---------------------------------------------------------------- the run
  async function guarded(name, fn) {
    if (!cfg.needs.includes(name)) { // the requirement list does not ask for it: not measured, said so
      out[name] = { state: "skipped", error: W.not_needed };
      step(name, "done", W.state_skipped);
      return;
    }
    step(name, "running");
    try {
      const r = await fn();
      out[name] = r;
      step(name, r.state === "ok" ? "done" : "problem", r.state === "ok" ? W.done : W["state_" + r.state]);
    } catch (e) {
      out[name] = { state: "error", error: String(e.message || e).slice(0, 300) };
      step(name, "problem", W.state_error);
    }
  }

  async function run() {
    $("start").disabled = true;
    $("progress").hidden = false;
    const AC = window.AudioContext || window.webkitAudioContext;
    const ac = AC ? new AC() : null; // made inside the click: browsers allow sound only after one
    out.browser = browserFacts();
    step("browser", "done", W.done);
    step("camera", "running");
    step("microphone", "running");
    const devices = await openDevices(cfg.needs.includes("camera"), cfg.needs.includes("microphone"));
    await Promise.all([
      guarded("camera", () => camera(devices.video)),
      guarded("microphone", () => ac ? microphone(devices.audio, ac) : { state: "unsupported", error: "no Web Audio" }),
    ]);
    await Promise.all([
      guarded("speakers", () => ac ? speakers(ac) : { state: "unsupported", error: "no Web Audio" }),
      guarded("latency", latency),
    ]);
    await guarded("bandwidth", bandwidth);
    if (ac) ac.close().catch(() => {});
    try {
      const r = await postJSON("/__selftest/result", out);
      // The server's words, from the one judgement the stored report shows: verdict, coverage
      // and every fault with its advice cannot disagree with each other.
      const o = r.outcome;
      $("verdict").textContent = o.headline;
      $("verdict").className = r.verdict;
      $("explain").textContent = o.explain;
      $("coverage").textContent = o.coverage;
      $("kept").textContent = o.keeper;
      for (const p of o.problems) {
        const li = document.createElement("li");
        li.className = p.status;
        li.dataset.status = p.status;
        const what = document.createElement("span");
        what.className = "what";
        what.textContent = p.text;
        li.appendChild(what);
        if (p.advice) {
          const fix = document.createElement("div");
          fix.className = "fix";
          fix.textContent = p.advice;
          li.appendChild(fix);
        }
        $("problem-list").appendChild(li);
      }
      $("problems").hidden = o.problems.length === 0;
      $("report-link").href = r.report;
      $("report-download").href = r.download;
      $("json-download").href = r.json;
      // kept here but not in the organisation's overview: the page was not opened with a site link
      $("not-collected").hidden = !r.not_collected || r.not_collected === "not_stored";
      $("done").hidden = false;
      document.body.dataset.runId = r.run_id;
      $("report-link").focus();
    } catch (e) {
      // the server's share for this network (or everyone's) is used up: the server says for how
      // long, in the page's language
      $("error").textContent = e.status === 429 ? (e.message || W.busy) : W.post_failed + " " + String(e.message || e);
      $("error").hidden = false;
    }
    document.body.dataset.finished = "1";
  }

  $("start").addEventListener("click", run);
})();
