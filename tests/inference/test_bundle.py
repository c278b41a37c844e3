"""Model bundle: save/load round trip, integrity checks, versions, new-item placement."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from inference.bundle import ARRAYS_FILE, MANIFEST_FILE, ModelBundle
from inference.collab import CollabParams
from inference.errors import ModelError
from inference.fit import FitParams, fit_bundle
from inference.transfer import DomainSummary, query_vector
from tests.inference.planted_data import planted

PARAMS = FitParams(collab=CollabParams(dim=8), transfer_rank=6, own_rank=8)


@pytest.fixture(scope="module")
def fitted():
    data = planted(seed=2)
    return data, fit_bundle(data.sequences, data.items, data.text, PARAMS, text_model="test@1")


def test_round_trip_keeps_everything(fitted, tmp_path) -> None:
    _, bundle = fitted
    path = bundle.save(tmp_path / "bundle")
    loaded = ModelBundle.load(path)
    assert loaded.version == bundle.version and loaded.version.startswith("xfer-")
    assert loaded.item_ids == bundle.item_ids and loaded.item_domains == bundle.item_domains
    np.testing.assert_array_equal(loaded.inputs, bundle.inputs)
    np.testing.assert_array_equal(loaded.outputs, bundle.outputs)
    assert sorted(loaded.projections) == sorted(bundle.projections)
    for key, p in bundle.projections.items():
        np.testing.assert_array_equal(loaded.projections[key], p.astype(np.float32))
    assert loaded.params == bundle.params and loaded.text_model == "test@1"
    assert loaded.fit_info == bundle.fit_info and loaded.fit_info["transfer_rank"] == 6
    state = {"food": DomainSummary(bundle.inputs[3], 2)}
    np.testing.assert_array_equal(
        query_vector(state, "kitchen", loaded)[0], query_vector(state, "kitchen", bundle)[0]
    )
    text = np.ones(bundle.bridge.text_dim, dtype=np.float32)
    np.testing.assert_array_equal(
        loaded.vector_for_new_item(text, "food").output,
        bundle.vector_for_new_item(text, "food").output,
    )
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    assert manifest["version"] == bundle.version and manifest["domains"] == ["food", "kitchen"]


def test_save_replaces_an_existing_bundle(fitted, tmp_path) -> None:
    _, bundle = fitted
    dest = tmp_path / "b"
    bundle.save(dest)
    other = dataclasses.replace(bundle, params=dataclasses.replace(bundle.params, pop_weight=0.5))
    assert other.version != bundle.version  # parameters are part of the version
    other.save(dest)
    assert ModelBundle.load(dest).version == other.version
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no temporary leftovers


def test_corrupt_or_missing_bundle_is_refused(fitted, tmp_path) -> None:
    _, bundle = fitted
    with pytest.raises(ModelError):
        ModelBundle.load(tmp_path / "nothing")
    path = bundle.save(tmp_path / "bundle")
    blob = bytearray((path / ARRAYS_FILE).read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (path / ARRAYS_FILE).write_bytes(bytes(blob))
    with pytest.raises(ModelError):
        ModelBundle.load(path)


def test_lookups(fitted) -> None:
    _, bundle = fitted
    assert bundle.index_of("5") == 5 and bundle.index_of("nope") is None
    assert bundle.input_vector("nope") is None and bundle.output_vector("nope") is None
    np.testing.assert_array_equal(bundle.output_vector("7"), bundle.outputs[7])
    assert bundle.output_dim == bundle.input_dim + 1 == 9
    assert bundle.has_projection("food", "kitchen") and not bundle.has_projection("food", "toys")
    with pytest.raises(ModelError):
        bundle.projection("food", "toys")
    with pytest.raises(ModelError):
        bundle.vector_for_new_item(np.zeros(bundle.bridge.text_dim), "toys")


def test_new_item_lands_near_its_collaborative_neighbours() -> None:
    data = planted(seed=5)
    kitchen = data.domain_items("kitchen")
    rng = np.random.default_rng(0)
    hidden = rng.choice(kitchen, size=12, replace=False)
    train = [s[~np.isin(s, hidden)] for s in data.sequences]
    bundle = fit_bundle(train, data.items, data.text, PARAMS)
    known = np.setdiff1d(kitchen, hidden)
    agree = []
    for item in hidden:
        new = bundle.vector_for_new_item(data.text[item], "kitchen")
        # the stream's new-item path gives exactly what the fit gave the never-seen item
        np.testing.assert_allclose(new.output, bundle.outputs[item], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(new.input, bundle.inputs[item], rtol=1e-5, atol=1e-6)
        assert new.output[-1] == 0.0  # no interactions: zero log-popularity
        out = bundle.outputs[known, :-1]
        cos = (
            out @ new.output[:-1] / (np.linalg.norm(out, axis=1) * np.linalg.norm(new.output[:-1]))
        )
        neighbours = known[np.argsort(-cos)[:5]]
        agree.append((data.item_cluster[neighbours] == data.item_cluster[item]).mean())
    # chance is 0.25 (four planted groups); known items agree with each other about 0.9
    assert np.mean(agree) > 0.6, (
        f"new items' neighbours share their group only {np.mean(agree):.0%}"
    )


def _edit(path, manifest_edit=None, arrays_edit=None) -> None:
    """Change a saved bundle the way another writer would (sha kept consistent)."""
    manifest = json.loads((path / MANIFEST_FILE).read_text())
    if arrays_edit is not None:
        with np.load(path / ARRAYS_FILE) as data:
            arrays = {name: data[name] for name in data.files}
        arrays_edit(arrays)
        np.savez(path / ARRAYS_FILE, **arrays)
        manifest["arrays_sha256"] = hashlib.sha256((path / ARRAYS_FILE).read_bytes()).hexdigest()
    if manifest_edit is not None:
        manifest_edit(manifest)
    (path / MANIFEST_FILE).write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("manifest_edit", "arrays_edit", "says"),
    [
        (lambda m: m["params"].update(from_the_future=1.0), None, "refit it with this version"),
        (lambda m: m.pop("params"), None, "not a bundle this version of xrec can read"),
        (None, lambda a: a.pop("bridge_weights"), "not a bundle this version of xrec can read"),
        (None, lambda a: a["inputs"].__setitem__((0, 0), np.nan), "inputs hold NaN or inf"),
    ],
)
def test_a_bundle_this_version_cannot_serve_is_a_model_error(
    fitted, tmp_path, manifest_edit, arrays_edit, says
) -> None:
    _, bundle = fitted
    path = bundle.save(tmp_path / "bundle")
    _edit(path, manifest_edit, arrays_edit)
    with pytest.raises(ModelError, match=says):
        ModelBundle.load(path)
