"""How the control plane authenticates to Azure: ``DefaultAzureCredential``, or on AWS
Lambda a federated client assertion signed by AWS STS (no stored secret)."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from provisioners.aci.arm import AZURE_AUDIENCE, aws_web_identity_token, make_credential
from provisioners.aci.errors import ArmError


def test_default_is_the_default_azure_credential() -> None:
    from azure.identity import DefaultAzureCredential

    assert isinstance(make_credential({}), DefaultAzureCredential)


def test_aws_federation_uses_a_client_assertion() -> None:
    from azure.identity import ClientAssertionCredential

    env = {
        "PUSHPOOL_AZURE_FEDERATION": "aws",
        "AZURE_TENANT_ID": "00000000-0000-0000-0000-0000000000t1",
        "AZURE_CLIENT_ID": "00000000-0000-0000-0000-0000000000c1",
    }
    assert isinstance(make_credential(env), ClientAssertionCredential)
    with pytest.raises(ArmError, match="needs AZURE_CLIENT_ID"):
        make_credential({"PUSHPOOL_AZURE_FEDERATION": "aws", "AZURE_TENANT_ID": "t"})
    with pytest.raises(ArmError, match="only federation known is 'aws'"):
        make_credential({"PUSHPOOL_AZURE_FEDERATION": "gcp"})


def test_the_assertion_is_an_sts_web_identity_token_for_entra() -> None:
    sts = boto3.client(
        "sts", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y"
    )
    with Stubber(sts) as stub:  # botocore's own stub: checks the call against STS's model
        stub.add_response(
            "get_web_identity_token",
            {"WebIdentityToken": "eyJ.jwt.sig"},
            {"Audience": [AZURE_AUDIENCE], "SigningAlgorithm": "RS256", "DurationSeconds": 300},
        )
        assert aws_web_identity_token(sts) == "eyJ.jwt.sig"
        stub.assert_no_pending_responses()
