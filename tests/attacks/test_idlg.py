"""End to end on a real image: iDLG rebuilds a CIFAR-10 test image from its gradient."""

import benchmark


def test_idlg_rebuilds_a_cifar10_test_image():
    result = benchmark.run("cifar10-lenetzhu-b1", "idlg", targets=1, logger=None)
    summary = result.summary
    assert summary["label_accuracy"] == 1.0
    assert summary["psnr"] > 30 and summary["ssim"] > 0.95
    assert result.targets[0].loss < 1e-5
