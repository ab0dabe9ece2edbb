"""Checks that `moto_server.py`'s EC2 tag lookup by id gives moto's own answers.

Imports the launcher (which applies its patches) and compares, in process, every instance's
tags with moto's own `describe_tags` filtered by the instance's id, for instances with none to
six tags. Prints one line and exits 1 on the first difference.
"""

import os
import sys

os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import moto_server  # noqa: E402, F401  (applies the patches)
from moto.core import DEFAULT_ACCOUNT_ID  # noqa: E402
from moto.ec2.models import ec2_backends  # noqa: E402


def check_tags():
    ec2 = ec2_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    reservation = ec2.run_instances("ami-12c6146b", 20, "", [], instance_type="t3.micro", is_instance_type_default=False)
    for i, inst in enumerate(reservation.instances):
        ec2.create_tags([inst.id], {f"k{j}": f"v{i}-{j}" for j in range(i % 7)})
    for inst in reservation.instances:
        want = ec2.describe_tags(filters={"resource-id": [inst.id]})
        got = inst.get_tags()
        if got != want:
            print(f"tags of {inst.id} differ: {got} != moto's {want}")
            sys.exit(1)
    print(f"EC2 tags by id: {len(reservation.instances)} instances equal moto's own")


if __name__ == "__main__":
    check_tags()
