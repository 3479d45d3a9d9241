"""The README shows each MTA recipe exactly as the tests run it: the
lines between the markers of every conf/ sample the MTA tests read."""

import pytest

from mta_harness import REPO, recipe

SAMPLES = [
    ("postfix-socketmap.cf.sample", "#"),
    ("sendmail.mc.sample", "dnl"),
    ("exim.conf.sample", "#"),
    ("exim4/exim4.conf.localmacros", "#"),
    ("exim4/authbridge_rcpt.acl", "#"),
]


@pytest.mark.parametrize("sample, marker", SAMPLES,
                         ids=[s for s, _ in SAMPLES])
def test_the_readme_shows_the_recipe_the_tests_run(sample, marker):
    text = recipe(sample, marker)
    assert text.strip(), f"conf/{sample} has no recipe between its markers"
    readme = (REPO / "README.md").read_text()
    assert f"```\n{text}```\n" in readme, \
        f"README.md does not show conf/{sample}'s recipe verbatim:\n{text}"


def test_the_readme_shows_the_policy_recipe_the_tests_run():
    sample = (REPO / "conf/postfix-main.cf.sample").read_text()
    lines = [l for l in sample.splitlines()
             if l.startswith(("smtpd_recipient_restrictions",
                              "smtpd_relay_restrictions", " ", "\t"))
             and not l.lstrip().startswith("#")]
    readme = (REPO / "README.md").read_text()
    assert "\n".join("    " + l for l in lines) in readme
