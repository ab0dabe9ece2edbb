"""moto_server, plus the two S3 calls of requester pays that moto lacks, and an EC2 tag lookup
by resource id.

moto (5.2.5, the newest release) keeps a bucket's payer (`FakeBucket.payer`, which its AWS
Config support reports) but has no route for `GET/PUT /BUCKET?requestPayment`: it answers
GetBucketRequestPayment with a bucket listing and PutBucketRequestPayment as a CreateBucket.
This launcher adds GetBucketRequestPayment and PutBucketRequestPayment on that same field, with
S3's XML, and otherwise runs moto's own server unchanged (same arguments as `moto_server`).
"""

import re
import sys

from moto.ec2.models.core import TaggedEC2Resource
from moto.ec2.models.tags import EC2_PREFIX_TO_RESOURCE, get_prefix
from moto.s3.responses import S3Response
from moto.server import main

_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
_get = S3Response._bucket_response_get
_put = S3Response._bucket_response_put


def _get_with_payment(self, bucket_name, querystring):
    if "requestPayment" in querystring:
        bucket = self.backend.get_bucket(bucket_name)  # NoSuchBucket as moto answers it
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<RequestPaymentConfiguration xmlns="{_XMLNS}"><Payer>{bucket.payer}</Payer>'
            "</RequestPaymentConfiguration>"
        )
        return 200, {"Content-Type": "application/xml"}, body
    return _get(self, bucket_name, querystring)


def _put_with_payment(self, request, bucket_name, querystring):
    if "requestPayment" in querystring:
        bucket = self.backend.get_bucket(bucket_name)
        body = self.body.decode("utf-8") if isinstance(self.body, bytes) else (self.body or "")
        payer = re.search(r"<Payer>\s*(Requester|BucketOwner)\s*</Payer>", body)
        if not payer:
            return (
                400,
                {"Content-Type": "application/xml"},
                '<?xml version="1.0" encoding="UTF-8"?><Error><Code>MalformedXML</Code>'
                "<Message>The XML you provided was not well-formed or did not validate against our "
                "published schema</Message></Error>",
            )
        bucket.payer = payer.group(1)
        return 200, {}, ""
    return _put(self, request, bucket_name, querystring)


def _tags_of(self):
    """An EC2 resource's tags, looked up by its id.

    moto's own `get_tags` runs `describe_tags(filters={"resource-id": [id]})`, which matches a
    regular expression against every tag of every resource: DescribeInstances, which calls it
    per instance (to filter and again to answer), is then quadratic in the fleet (~30 s per
    page at 2,000 instances with 10 tags each). Same answer, same order, found directly.
    """
    if not self.id:
        return []
    tags = self.ec2_backend.tags
    if self.id not in tags:  # a defaultdict: do not add the id by looking
        return []
    kind = EC2_PREFIX_TO_RESOURCE.get(get_prefix(self.id), "")
    return [
        {"resource_id": self.id, "key": key, "value": value, "resource_type": kind}
        for key, value in tags[self.id].items()
    ]


TaggedEC2Resource.get_tags = _tags_of
S3Response._bucket_response_get = _get_with_payment
S3Response._bucket_response_put = _put_with_payment

if __name__ == "__main__":
    sys.exit(main())
