"""``from advparity.testing import assert_robust``: a robustness regression test for your own suite.

The implementation is :func:`advparity.harness.testing.assert_robust`.
"""

from advparity.harness.testing import assert_robust

__all__ = ["assert_robust"]
