"""snnlib/allocator.py: glibc keeps the freed memory of a simulation, so reused buffers stop faulting pages in."""
import subprocess
import sys
import textwrap

import pytest

from snnlib import allocator


def test_keep_freed_memory_is_done_once_and_recorded():
    first = allocator.keep_freed_memory()
    assert allocator.keep_freed_memory() == first == allocator.setting()
    if sys.platform.startswith("linux"):
        import platform
        if platform.libc_ver()[0] == "glibc":
            assert first == (f"glibc mallopt: mmap_threshold={allocator.MMAP_THRESHOLD}, "
                             f"trim_threshold={allocator.TRIM_THRESHOLD}")


@pytest.mark.slow
def test_keep_freed_memory_stops_the_page_faults():
    """A small ResNet-20 simulation, run three times, then counted: with glibc's default thresholds the fourth run
    still faults thousands of pages in afresh; after keep_freed_memory() the heap keeps them (snnlib/allocator.py).
    Measured on the 2-core machine: about 10,000 faults against a few hundred."""
    script = textwrap.dedent("""
        import resource, sys, torch
        from snnlib import allocator
        if sys.argv[1] == "keep":
            print(allocator.keep_freed_memory(), file=sys.stderr)
        torch.set_num_threads(1)
        from snnlib.engine import Plan, simulate
        from snnlib.methods.qcfs.activation import QCFS
        from snnlib.methods.qcfs.conversion import convert
        from snnlib.models import create_model
        torch.manual_seed(0)
        snn = convert(create_model("resnet20", num_classes=10, in_channels=3, image_size=32,
                                   act=lambda: QCFS(4, 1.0)).eval())
        x = torch.rand(8, 3, 32, 32)
        for _ in range(3):
            simulate(snn, x, 4, plan=Plan(chunk=2))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        simulate(snn, x, 4, plan=Plan(chunk=2))
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """)
    faults = {}
    for mode in ("default", "keep"):
        run = subprocess.run([sys.executable, "-c", script, mode], capture_output=True, text=True, check=True)
        faults[mode] = int(run.stdout.split()[-1])
        if mode == "keep" and "glibc mallopt" not in run.stderr:
            pytest.skip(f"not glibc here: {run.stderr.strip()}")
    assert faults["default"] > 2000, faults
    assert faults["keep"] * 5 < faults["default"], faults
