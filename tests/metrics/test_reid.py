"""Face re-identification with a real pretrained encoder (dlib's, from the package index), offline."""

import pytest
import torch
from facenet_pytorch import InceptionResnetV1

from benchmark.data import load_samples, load_source
from benchmark.metrics import EvaluationSettings, MatchedBatch, MetricUnavailableError
from benchmark.metrics.reid import Aligner, FaceReidentification, facenet_weights, load_encoder
from benchmark.spec import DataSpec


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
    assert reid.facts == {"reid_backend": "dlib", "reid_gallery": "100 images of 100 people"}


def test_facenet_without_its_weights_offline_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MetricUnavailableError, match="--reid dlib"):
        load_encoder("facenet")
    assert load_encoder("auto")[0] == "dlib"


def test_a_dataset_without_identities_cannot_be_reidentified():
    source = load_source(DataSpec(dataset="cifar10"))
    with pytest.raises(MetricUnavailableError, match="lfwmini"):
        FaceReidentification(EvaluationSettings(source=source))


def test_facenet_is_chosen_where_its_weights_are_cached(tmp_path, monkeypatch, faces):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    facenet_weights().parent.mkdir(parents=True)
    torch.manual_seed(0)  # random weights stand in for VGGFace2's, which cannot be downloaded here
    torch.save(InceptionResnetV1(classify=True, num_classes=8631).state_dict(), facenet_weights())
    name, encoder = load_encoder("auto")
    crops, found = Aligner(encoder.input_size)(faces[1].images[:2])
    embeddings = encoder.embed(crops)
    assert name == "facenet" and embeddings.shape == (2, 512) and found.tolist() == [1.0, 1.0]
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(2, dtype=torch.float64), atol=1e-5)  # L2-normalised
