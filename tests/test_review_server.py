"""The review server over real HTTP on 127.0.0.1: token, Host check, decisions, images, escaping, the CLI."""

import http.client
import io
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
from PIL import Image
from review_helpers import KG, Serving, hostile_run

from kgalign.data.decisions import read_decisions


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def get(url: str) -> tuple[int, bytes, dict]:
    try:
        with OPENER.open(url, timeout=10) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def post(url: str, fields: dict) -> tuple[int, dict]:
    data = urllib.parse.urlencode(fields).encode()
    try:
        with OPENER.open(urllib.request.Request(url, data=data, method="POST"), timeout=10) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def key(serving, i):
    return serving.state.data.queue[i].key


@pytest.fixture
def run(tmp_path):
    return hostile_run(tmp_path)


def test_every_request_needs_the_token(run):
    with Serving(run) as s:
        token = s.state.token
        assert get(s.base + "/")[0] == 403
        assert get(s.base + "/?token=wrong")[0] == 403
        assert get(s.base + f"/image/0/0?token=x{token}")[0] == 403
        assert post(s.base + "/decide", {"i": 0, "decision": "accepted"})[0] == 403
        assert post(s.base + "/decide", {"i": 0, "decision": "accepted", "token": "nope"})[0] == 403
        assert post(s.base + "/undo", {})[0] == 403
        assert not (run / "decisions.tsv").exists()
        status, body, headers = get(s.url)
        assert status == 200 and "script-src 'nonce-" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer" and headers["X-Frame-Options"] == "DENY"


def test_foreign_host_header_is_refused(run):
    with Serving(run) as s:
        port = s.server.server_address[1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", f"/?token={s.state.token}", headers={"Host": f"evil.example:{port}"})
        r = conn.getresponse()
        assert r.status == 403 and b"Host" in r.read()
        conn.close()


def test_graph_strings_are_escaped(run):
    with Serving(run) as s:
        status, body, _ = get(s.url)
    page = body.decode()
    assert status == 200
    assert "<script>window.__pwned" not in page and "onerror=" not in page.replace("onerror=&#34;", "")
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page  # shown as text
    assert "&lt;/title&gt;&lt;script&gt;window.__pwned=4" in page
    assert page.count("<script") == 1  # only the page's own key handler


def test_decisions_are_written_at_once_and_resume(run):
    with Serving(run) as s:
        t = s.state.token
        status, headers = post(s.base + "/decide", {"token": t, "i": 0, "pair": key(s, 0), "decision": "accepted"})
        assert status == 303 and headers["Location"].endswith("&i=1")
        got = read_decisions(run / "decisions.tsv")
        assert [(d.kg1, d.decision) for d in got] == [('http://a.org/"><script>window.__pwned=3</script>', "accepted")]
        assert got[0].score == pytest.approx(0.45)
        assert post(s.base + "/decide", {"token": t, "i": 1, "pair": key(s, 1), "decision": "rejected"})[0] == 303
        assert post(s.base + "/decide", {"token": t, "i": 9, "decision": "accepted"})[0] == 400
        # a form from a page showing another pair at this position (stale page, changed queue) is refused
        assert post(s.base + "/decide", {"token": t, "i": 2, "pair": key(s, 0), "decision": "accepted"})[0] == 409
        assert post(s.base + "/decide", {"token": t, "i": 2, "decision": "accepted"})[0] == 409
        assert post(s.base + "/decide", {"token": t, "i": 2, "pair": key(s, 2), "decision": "maybe"})[0] == 400
    # a new server (the process restarted) resumes at the first undecided pair
    with Serving(run) as s:
        page = get(s.url)[1].decode()
        assert "2 of 3 decided" in page and "pair 3 of 3" in page
        status, headers = post(s.base + "/undo", {"token": s.state.token})
        assert status == 303 and headers["Location"].endswith("&i=1")
        assert [d.decision for d in read_decisions(run / "decisions.tsv")] == ["accepted"]
        for i in (1, 2):
            post(s.base + "/decide", {"token": s.state.token, "i": i, "pair": key(s, i), "decision": "skipped"})
        assert "All 3 pairs are decided" in get(s.url)[1].decode()


def test_sample_mode_reviews_accepted_pairs(run):
    with Serving(run, sample=5) as s:
        assert [q.status for q in s.state.data.queue] == ["accepted"]
        assert "sample of accepted pairs" in get(s.url)[1].decode()


def _png(path, colour):
    Image.new("RGB", (64, 40), colour).save(path)


def test_images_only_from_allowed_places(tmp_path):
    from kgalign.data.store import load_dataset, write_dataset
    from kgalign.features.images_fetch import ImageCache

    run = hostile_run(tmp_path)
    ds_path = tmp_path / "ds"
    ds = load_dataset(ds_path)
    inside = ds_path / "img.png"
    outside = tmp_path / "elsewhere" / "secret.png"
    outside.parent.mkdir()
    _png(inside, "red")
    _png(outside, "blue")
    svg = ds_path / "x.svg"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    cache = tmp_path / "cache"
    buf = io.BytesIO()
    Image.new("RGB", (30, 30), "green").save(buf, format="PNG")
    ImageCache(cache).put("http://img.example/g.png", buf.getvalue(), {"size": len(buf.getvalue())})
    ds.image_entity = np.array([0, 0, 0, 0, 6], np.int64)
    ds.image_source = [str(inside), str(outside), str(svg), "http://img.example/missing.png", "http://img.example/g.png"]
    write_dataset(ds, ds_path, overwrite=True)
    _png(ds_path / "img.png", "red")  # the dataset directory was replaced: put the files back
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>')
    with Serving(run, cache_dir=cache) as s:
        t = s.state.token
        status, body, headers = get(s.base + f"/image/0/0?token={t}")
        assert status == 200 and headers["Content-Type"] == "image/png"
        assert Image.open(io.BytesIO(body)).getpixel((0, 0))[:3] == (255, 0, 0)
        assert get(s.base + f"/image/0/1?token={t}")[0] == 404  # outside run, dataset and cache
        assert get(s.base + f"/image/0/2?token={t}")[0] == 404  # not an image Pillow decodes: never passed through
        assert get(s.base + f"/image/0/3?token={t}")[0] == 404  # not cached: never fetched
        status, body, _ = get(s.base + f"/image/6/0?token={t}")
        assert status == 200 and Image.open(io.BytesIO(body)).getpixel((0, 0))[:3] == (0, 128, 0)
        assert get(s.base + f"/image/99/0?token={t}")[0] == 404
        assert get(s.base + f"/../../etc/passwd?token={t}")[0] == 404
    with Serving(run, cache_dir=cache, image_dirs=(outside.parent,)) as s:
        status, body, _ = get(s.base + f"/image/0/1?token={s.state.token}")  # --image-dir allows it
        assert status == 200 and Image.open(io.BytesIO(body)).getpixel((0, 0))[:3] == (0, 0, 255)


def test_cli_serves_until_interrupted(run):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    p = subprocess.Popen([*KG, "review", str(run), "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = p.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "token=" in url
        status, body, _ = get(url)
        assert status == 200 and b"kgalign review" in body
        page = body.decode()
        pair = page.split('name="pair" value="')[1].split('"')[0]
        fields = {"token": url.split("token=")[1], "i": 0, "pair": pair, "decision": "rejected"}
        assert post(url.split("/?")[0] + "/decide", fields)[0] == 303
    finally:
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert "decisions are in" in err and "Traceback" not in err
    assert [d.decision for d in read_decisions(run / "decisions.tsv")] == ["rejected"]


def test_cli_without_predictions_says_what_to_run(tmp_path):
    run = hostile_run(tmp_path)
    (run / "predictions.tsv").unlink()
    p = subprocess.run([*KG, "review", str(run), "--no-browser"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 3 and "kgalign align" in p.stderr and "Traceback" not in p.stderr


def test_cli_bad_decisions_file_is_bad_input(tmp_path):
    run = hostile_run(tmp_path)
    (run / "decisions.tsv").write_text("kg1\tkg2\tdecision\na\tb\tperhaps\n")
    start = time.monotonic()
    p = subprocess.run([*KG, "review", str(run), "--no-browser"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and f"{run / 'decisions.tsv'}:2: unknown decision" in p.stderr
    assert time.monotonic() - start < 60 and "Traceback" not in p.stderr


def test_decisions_from_the_page_become_next_rounds_seeds(run):
    from kgalign.data.decisions import seeds_from_decisions
    from kgalign.data.store import load_dataset

    with Serving(run) as s:
        t, q = s.state.token, s.state.data.queue
        post(s.base + "/decide", {"token": t, "i": 0, "pair": key(s, 0), "decision": "rejected"})  # a training link
        post(s.base + "/decide", {"token": t, "i": 1, "pair": key(s, 1), "decision": "accepted"})
        post(s.base + "/decide", {"token": t, "i": 2, "pair": key(s, 2), "decision": "skipped"})
    ds = load_dataset(s.state.data.run.dataset_path)
    seeds = ds.links_for("train")
    assert [q[0].id1, q[0].id2] in seeds.tolist()
    up = seeds_from_decisions(seeds, read_decisions(run / "decisions.tsv"), ds.entities, ds.entity_kg)
    assert up.extra.tolist() == [[q[1].id1, q[1].id2]]
    assert up.negatives.tolist() == up.removed.tolist() == [[q[0].id1, q[0].id2]]
    assert len(up.seeds) == len(seeds) and [q[0].id1, q[0].id2] not in up.seeds.tolist() and not up.unknown


def test_help_stays_light():
    code = (
        "import sys; from typer.testing import CliRunner; from kgalign.cli import app;"
        "r = CliRunner().invoke(app, ['review', '--help']); assert r.exit_code == 0, r.output;"
        "r = CliRunner().invoke(app, ['report', '--help']); assert r.exit_code == 0, r.output;"
        "heavy = [m for m in ('matplotlib', 'jinja2', 'torch', 'kgalign.review') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_without_a_display_opens_no_browser(run):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    p = subprocess.Popen([*KG, "review", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        url = p.stdout.readline().strip()
        assert get(url)[0] == 200
    finally:
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=20)
    assert p.returncode == 0 and "no graphical browser found: open the URL above" in err
