"""Face re-identification: does a face recognition model name the person in a reconstruction?

Each image is aligned with facenet-pytorch's MTCNN (Zhang et al., 2016) where it finds a face (else
the whole image is used, and ``reid_aligned`` counts how often a face was found), embedded by a
pretrained face encoder, and ranked against the task's gallery by Euclidean distance between
embeddings (a person's distance: that of their nearest gallery image). Top-k is 1 where the true
person is among the k nearest people. The same is reported for the original private images (the
ceiling: what the encoder achieves on the real faces) and for uniform-noise images (chance).

Encoders: ``facenet`` (InceptionResnetV1 trained on VGGFace2; Schroff et al., 2015, Cao et al.,
2018), the default where its weights are present, and ``dlib`` (dlib's ResNet face encoder, 99.38 %
on LFW verification; ``pip install leakbench[faces]``), which installs from the package index. Each
encoder's weights file is used only when its sha256 is the published file's (:data:`WEIGHTS`); any
other file is refused, and the metric reported unavailable with the reason.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from benchmark.core.downloads import attempt_download, cache_dir
from benchmark.core.errors import NotApplicableError
from benchmark.core.files import write_atomic
from benchmark.core.registry import Registry
from benchmark.metrics import (
    METRICS,
    EvaluationSettings,
    MatchedBatch,
    MetricInfo,
    MetricUnavailableError,
    Tolerance,
    describe,
)
from benchmark.metrics.perceptual import sha256

RANKS = (1, 5)
DETECTION_SIZE = 160  # MTCNN looks for faces of at least 20 px: small images are enlarged to this first
CHUNK = 64  # images aligned and embedded at a time (a gallery of thousands of 250×250 faces)


@dataclass(frozen=True)
class Weights:
    """An encoder's published weights file: where it comes from and its sha256."""

    file: str
    source: str
    sha256: str

    def check(self, path: Path, encoder: str, fix: str) -> str:
        """The sha256 of ``path`` when it is this file; else MetricUnavailableError saying why, and ``fix``."""
        try:
            digest = sha256(path)
        except OSError as err:
            raise MetricUnavailableError(f"{encoder}: cannot read its weights {path} ({err.strerror}); {fix}") from None
        if digest != self.sha256:
            raise MetricUnavailableError(
                f"{encoder}: {path} is not the published {self.file} (sha256 {digest[:16]}…, "
                f"the published file's is {self.sha256[:16]}…); {fix}"
            )
        return digest


WEIGHTS = {
    # facenet-pytorch publishes no hash (its loader checks none); this sha256 (of 111 898 327 bytes) is the one
    # independent projects that download this release asset pin.
    "facenet": Weights(
        "20180402-114759-vggface2.pt",
        "https://github.com/timesler/facenet-pytorch/releases/download/v2.2.9/20180402-114759-vggface2.pt",
        "281cebca8662831adb987a874bdcb36e73f5b1c6dc5ee5878f305e985625d99b",
    ),
    # dlib-models' dlib_face_recognition_resnet_model_v1.dat (22 466 066 bytes, decompressed from its .bz2), which
    # the face_recognition_models package ships.
    "dlib": Weights(
        "dlib_face_recognition_resnet_model_v1.dat",
        "https://github.com/davisking/dlib-models (packaged by face_recognition_models)",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    ),
}


class FaceEncoder:
    """Aligned RGB face crops, uint8 (N, S, S, 3) with S = ``input_size`` → embeddings (N, D); ``sha256``
    is that of the weights file it checked and loaded."""

    input_size: int
    sha256: str

    def embed(self, faces: np.ndarray) -> Tensor:
        raise NotImplementedError


ENCODERS: Registry[Callable[[], FaceEncoder]] = Registry("face encoder")


def facenet_weights() -> Path:
    """Where facenet-pytorch keeps the VGGFace2 weights once downloaded ($TORCH_HOME/checkpoints)."""
    from facenet_pytorch.models.inception_resnet_v1 import get_torch_home

    return Path(get_torch_home()) / "checkpoints" / WEIGHTS["facenet"].file


def _download(weights: Weights, path: Path) -> None:
    """``weights`` from its source to ``path``, which it reaches only with the published sha256 (torch.hub's check)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(weights.source, str(path), hash_prefix=weights.sha256, progress=False)


@ENCODERS.register("facenet")
class FacenetEncoder(FaceEncoder):
    """InceptionResnetV1 (VGGFace2), 512-d L2-normalised embeddings of 160×160 crops."""

    input_size = 160

    def __init__(self) -> None:
        from facenet_pytorch import InceptionResnetV1

        path, weights = facenet_weights(), WEIGHTS["facenet"]
        fix = (
            f"delete it and run once with internet access (facenet-pytorch's release file), copy the published "
            f"{path.name} there, or use --reid dlib"
        )
        if not path.is_file():
            _, reason = attempt_download(lambda: _download(weights, path))
            if reason:
                raise MetricUnavailableError(
                    f"facenet: the VGGFace2 weights are not at {path} and {reason}; run once "
                    f"with internet access, copy {path.name} there, or use --reid dlib"
                )
        self.sha256 = weights.check(path, "facenet", fix)
        self.model = InceptionResnetV1(pretrained="vggface2").eval()  # facenet-pytorch's loading of the checked file

    def embed(self, faces: np.ndarray) -> Tensor:
        inputs = (torch.from_numpy(faces).permute(0, 3, 1, 2).float() - 127.5) / 128.0  # facenet's standardisation
        with torch.no_grad():
            return self.model(inputs).double()


def dlib_model_file() -> Path | None:
    """dlib's ResNet encoder in the ``face_recognition_models`` package, found relative to the package
    (its own ``pkg_resources`` lookup fails on recent setuptools); None where it is not installed."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "dlib_face_recognition_resnet_model_v1.dat"
    return path if path.is_file() else None


@ENCODERS.register("dlib")
class DlibEncoder(FaceEncoder):
    """dlib's ResNet-29 metric-learning encoder, 128-d embeddings of 150×150 crops."""

    input_size = 150

    def __init__(self) -> None:
        path = dlib_model_file()
        if path is None or importlib.util.find_spec("dlib") is None:
            raise MetricUnavailableError(
                "dlib: its face encoder is not installed: pip install 'leakbench[faces]' "
                "(dlib-bin and face-recognition-models)"
            )
        self.sha256 = WEIGHTS["dlib"].check(
            path, "dlib", "reinstall the package that ships it: pip install --force-reinstall face-recognition-models"
        )
        import dlib

        self.model = dlib.face_recognition_model_v1(str(path))

    def embed(self, faces: np.ndarray) -> Tensor:
        return torch.tensor(np.array(self.model.compute_face_descriptor(list(faces))), dtype=torch.float64)


def resolve_backend(backend: str) -> str:
    """The encoder a run uses: the one named, or for ``auto`` facenet where its weights are cached, else dlib."""
    if backend != "auto":
        return ENCODERS.canonical(backend)
    return "facenet" if facenet_weights().is_file() else "dlib"


def load_encoder(backend: str) -> tuple[str, FaceEncoder]:
    """The encoder :func:`resolve_backend` names, and its name."""
    name = resolve_backend(backend)
    try:
        return name, ENCODERS.get(name)()
    except MetricUnavailableError as err:
        if backend != "auto" or name == "facenet":
            raise
        raise MetricUnavailableError(
            f"no face encoder: the facenet VGGFace2 weights are not at {facenet_weights()} and {err}"
        ) from None


class Aligner:
    """MTCNN face detection (facenet-pytorch, whose weights ship with it) and cropping to the encoder's size."""

    def __init__(self, size: int) -> None:
        from facenet_pytorch import MTCNN

        self.size = size
        self.mtcnn = MTCNN(image_size=size, margin=0, device="cpu")

    def __call__(self, images: Tensor) -> tuple[np.ndarray, Tensor]:
        """Images (N, C, H, W) in [0, 1] → crops uint8 (N, S, S, 3), and 1.0 where a face was found (N,)."""
        from facenet_pytorch.models.utils.detect_face import extract_face

        rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        pixels = (rgb.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        pictures = [Image.fromarray(p).resize((DETECTION_SIZE, DETECTION_SIZE), Image.BICUBIC) for p in pixels]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # facenet-pytorch's numpy deprecation warnings
            boxes, _ = self.mtcnn.detect(pictures)
        crops, found = [], []
        for picture, box in zip(pictures, boxes):
            if box is None:  # no face found: the whole image
                crops.append(np.asarray(picture.resize((self.size, self.size), Image.BICUBIC)))
            else:  # the most confident face
                crop = extract_face(picture, box[0], image_size=self.size, margin=0)
                crops.append(crop.permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())
            found.append(box is not None)
        return np.ascontiguousarray(np.stack(crops)), torch.tensor(found, dtype=torch.float64)


_GALLERIES: dict[str, Tensor] = {}  # gallery key (FaceReidentification.gallery_key) → embeddings


@METRICS.register("reid")
class FaceReidentification:
    """Per image: ``reid_top1``, ``reid_top5`` (1 where the person is among the k nearest people of the
    gallery), ``reid_aligned``, and the same ranks of the original image (``_ceiling``) and of a noise
    image (``_chance``); ``facts`` names the backend and the gallery."""

    def __init__(self, settings: EvaluationSettings) -> None:
        if settings.source is None:
            raise MetricUnavailableError("face re-identification needs the task's data source for its gallery")
        self.source = settings.source
        try:
            self.gallery_images, self.gallery_people = self.source.gallery()
        except NotApplicableError as err:
            raise MetricUnavailableError(str(err)) from None
        self.backend, self.encoder = load_encoder(settings.reid_backend)
        self.align = Aligner(self.encoder.input_size)
        self.facts = {
            "reid_backend": self.backend,
            "reid_weights_sha256": self.encoder.sha256,
            "reid_gallery": f"{len(self.gallery_people)} images of {len(self.gallery_people.unique())} people",
        }

    @cached_property
    def gallery_key(self) -> str:
        """What the gallery's embeddings are a function of: the gallery's pixels, the encoder's weights and
        input size, and the versions of torch and facenet-pytorch (MTCNN) that align and embed them."""
        parts = [
            hashlib.sha256(self.gallery_images.contiguous().numpy()).hexdigest(),
            self.encoder.sha256,
            str(self.encoder.input_size),
            torch.__version__,
            version("facenet-pytorch"),
        ]
        return hashlib.sha256(" ".join(parts).encode()).hexdigest()

    @cached_property
    def gallery(self) -> Tensor:
        """Embeddings of the gallery (M, D), computed once for one :attr:`gallery_key` and kept in the cache
        (``reid/gallery-KEY.pt``, read back with ``weights_only=True``): LFW's 7 484 faces take minutes
        to embed on a CPU, and the tasks, runs and verifications that share a gallery embed it once."""
        if self.gallery_key not in _GALLERIES:
            _GALLERIES[self.gallery_key] = self._stored_gallery()
        return _GALLERIES[self.gallery_key]

    def _stored_gallery(self) -> Tensor:
        path = cache_dir() / "reid" / f"gallery-{self.gallery_key[:32]}.pt"
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(stored, Tensor) and stored.ndim == 2 and len(stored) == len(self.gallery_people):
                return stored
        except Exception:  # not there yet, or a torn or foreign file: embedded again and replaced
            pass
        embeddings = self._embed(self.gallery_images)[0]
        buffer = io.BytesIO()
        torch.save(embeddings, buffer)
        write_atomic(path, buffer.getvalue())
        return embeddings

    def _embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Images (N, C, H, W), uint8 or in [0, 1] → embeddings (N, D), and 1.0 where a face was found (N,)."""
        parts = [
            self.align(chunk.float() / 255 if chunk.dtype == torch.uint8 else chunk) for chunk in images.split(CHUNK)
        ]
        return (torch.cat([self.encoder.embed(crops) for crops, _ in parts]), torch.cat([found for _, found in parts]))

    def _hits(self, embeddings: Tensor, people: Tensor) -> dict[int, Tensor]:
        distances = torch.cdist(embeddings, self.gallery)  # (N, M)
        candidates = self.gallery_people.unique()  # (P,)
        per_person = torch.stack([distances[:, self.gallery_people == p].min(1).values for p in candidates], 1)
        ranked = candidates[per_person.argsort(1)]  # (N, P), nearest person first
        return {k: (ranked[:, :k] == people[:, None]).any(1).double() for k in RANKS}

    def __call__(self, batch: MatchedBatch) -> dict[str, Tensor]:
        people = batch.truth_labels
        generator = torch.Generator().manual_seed(int(people.sum()) + len(people))
        noise = torch.rand(batch.truth_images.shape, generator=generator, dtype=torch.float64)
        values: dict[str, Tensor] = {}
        for suffix, images in (("", batch.images), ("_ceiling", batch.truth_images), ("_chance", noise)):
            embeddings, found = self._embed(images)
            values.update({f"reid_top{k}{suffix}": hit for k, hit in self._hits(embeddings, people).items()})
            if suffix == "":
                values["reid_aligned"] = found
        return values


_REID = {
    "alignment": "facenet-pytorch MTCNN (whole image where no face is found)",
    "encoders": f"facenet InceptionResnetV1 (VGGFace2), {WEIGHTS['facenet'].file} sha256 {WEIGHTS['facenet'].sha256}; "
    f"or dlib ResNet, {WEIGHTS['dlib'].file} sha256 {WEIGHTS['dlib'].sha256}; the run's reid_backend "
    f"and reid_weights_sha256 say which (auto: facenet where its weights are present, else dlib)",
    "distance": "Euclidean between embeddings; a person's: that of their nearest gallery image",
}
for _k in RANKS:
    describe(
        f"reid_top{_k}",
        MetricInfo(
            title=f"re-id top-{_k}",
            higher_is_better=True,
            percent=True,
            tolerance=Tolerance(rel=0.0, abs=0.0),
            packages=("facenet-pytorch", "dlib-bin", "face-recognition-models"),
            definition={"formula": f"1 where the true person is among the {_k} nearest people of the gallery", **_REID},
        ),
    )
    for _suffix, _what in (("_ceiling", "the original private image"), ("_chance", "a uniform-noise image")):
        describe(
            f"reid_top{_k}{_suffix}",
            MetricInfo(
                title=f"re-id top-{_k} {_suffix[1:]}",
                percent=True,
                tolerance=Tolerance(rel=0.0, abs=0.0),
                board=False,
                definition={"formula": f"reid_top{_k} of {_what}", **_REID},
            ),
        )
describe(
    "reid_aligned",
    MetricInfo(
        title="face found",
        percent=True,
        tolerance=Tolerance(rel=0.0, abs=0.0),
        board=False,
        definition={"formula": "1 where MTCNN found a face in the reconstruction", **_REID},
    ),
)
