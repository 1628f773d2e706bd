"""The service's contract: one description of the service under test, which every stage of a run takes.

``load_profile("shop.toml")`` (or ``"reference"``) gives a ``Profile``: how to get payments, each
delivery channel rendered and signed, what answers say, where side effects and state are. The
file format is in docs/profiles.md (``schema``); a legacy target description (``--target URL``,
``--target-file``) becomes a Profile at the edge with ``Target.to_profile`` (``legacy``).
"""

from harness.errors import ProfileError
from harness.profile.contract import Profile
from harness.profile.legacy import Signing, Target, profile_of_target
from harness.profile.loader import BUILT_IN, load_profile
from harness.profile.patterns import MAX_TEXT_CHARS, Pattern, PatternError, compile_pattern, first_group
from harness.profile.schema import parse_profile
from harness.profile.payments import Payment

__all__ = ["BUILT_IN", "MAX_TEXT_CHARS", "Pattern", "PatternError", "Payment", "Profile", "ProfileError", "Signing",
           "Target", "compile_pattern", "first_group", "load_profile", "parse_profile", "profile_of_target"]
