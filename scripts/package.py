"""`make package`: what `sam publish` takes, made from `sam build`'s output (.aws-sam/build).

    python scripts/package.py [--bucket BUCKET] [--source-url URL] [--output FILE]

Without --bucket, offline: moto's server on loopback plays S3 (the SAM CLI's boto3 reaches it
through AWS_ENDPOINT_URL_S3), so the whole path runs without an account; the packaged template
then names moto's objects and is a check, not a release. With --bucket, the real S3 bucket of
the account and Region in the environment (what a release publishes from).

`sam package` uploads the function's code and the files the SAR metadata names (LicenseUrl,
ReadmeUrl) and rewrites them as s3:// URLs; the result is checked: every local path replaced,
every object present, SemanticVersion equal to the binary's version. --source-url adds HomePageUrl
and SourceCodeUrl to the packaged template's metadata (SAR takes no intrinsic function there, so
the public repository's address is given here rather than in template.yaml).
"""

import argparse
import os
import socket
import subprocess
import sys
import time

import boto3
from samcli.yamlhelper import yaml_dump, yaml_parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV_BIN = os.path.dirname(sys.executable)
REGION = os.environ.get("AWS_DEFAULT_REGION", "eu-central-1")


def start_moto():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([os.path.join(VENV_BIN, "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto_server did not start")


def main():
    args = argparse.ArgumentParser()
    args.add_argument("--bucket")
    args.add_argument("--source-url", default="")
    args.add_argument("--output", default=os.path.join(ROOT, ".aws-sam", "packaged.yaml"))
    args.add_argument("--version", required=True, help="the binary's --version")
    a = args.parse_args()

    env = dict(os.environ, SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION=REGION)
    moto = None
    bucket = a.bucket
    if not bucket:
        moto, url = start_moto()
        env.update(AWS_ENDPOINT_URL_S3=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        bucket = "connect-task-bridge-packages"
        boto3.client("s3", region_name=REGION, endpoint_url=url, aws_access_key_id="testing",
                     aws_secret_access_key="testing").create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    try:
        subprocess.run([os.path.join(VENV_BIN, "sam"), "package", "--s3-bucket", bucket,
                        "--s3-prefix", "connect-task-bridge", "--output-template-file", a.output,
                        "--region", REGION], cwd=ROOT, env=env, check=True)
        with open(a.output) as f:
            packaged = yaml_parse(f.read())
        app = packaged["Metadata"]["AWS::ServerlessRepo::Application"]
        if a.source_url:
            app["HomePageUrl"] = a.source_url
            app["SourceCodeUrl"] = a.source_url
            with open(a.output, "w") as f:
                f.write(yaml_dump(packaged))
        s3 = boto3.client("s3", region_name=REGION, endpoint_url=env.get("AWS_ENDPOINT_URL_S3"),
                          aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
                          aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"))
        uploaded = [packaged["Resources"]["BridgeFunction"]["Properties"]["CodeUri"],
                    app["LicenseUrl"], app["ReadmeUrl"]]
        for uri in uploaded:
            assert isinstance(uri, str) and uri.startswith(f"s3://{bucket}/"), f"not uploaded: {uri}"
            s3.head_object(Bucket=bucket, Key=uri.split("/", 3)[3])
        assert app["SemanticVersion"] == a.version, (app["SemanticVersion"], a.version)
        where = "moto's S3 (an offline check)" if moto else f"s3://{bucket}"
        print(f"packaged {a.output}: code, LICENSE and README in {where}; "
              f"SemanticVersion {app['SemanticVersion']}. Publish with: sam publish --template {a.output}")
    finally:
        if moto:
            moto.terminate()


if __name__ == "__main__":
    main()
