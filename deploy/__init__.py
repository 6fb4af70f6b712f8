"""Deploy-time tools: the commands `pulumi up` runs on the deployer's machine (readiness gate,
rollout) and that users run after a deploy. boto3 and the standard library only, never
Pulumi: they start fast and run without a stack. From `components` they import only the pure
modules `naming`, `gitref`, `registry`, `aws_names` and `aws_session`
(tests/unit/test_deploy.py)."""
