// A CDK app that meters its functions with layer/cdk/lambda-meter.js, synthesized by
// tests/cdk.rs (no AWS account needed: nothing is deployed). Usage: node app.js OUTDIR ZIPDIR
// Prints the stacks' template files and the warnings the synthesis raised, as JSON.
'use strict';
const path = require('path');
const { App, Aspects, Stack } = require('aws-cdk-lib');
const ecr = require('aws-cdk-lib/aws-ecr');
const lambda = require('aws-cdk-lib/aws-lambda');
const { LambdaMeter, LambdaMeterLayers } = require('../../layer/cdk/lambda-meter');

const [outdir, zipDir] = process.argv.slice(2);
const app = new App({ outdir });
const code = lambda.Code.fromInline('def handler(event, context):\n    return event\n');

// One stack publishes the layers from the zips and meters its own functions with them.
const fleet = new Stack(app, 'Fleet');
const layers = new LambdaMeterLayers(fleet, 'LambdaMeter', { zipDir });
new lambda.Function(fleet, 'Python', { runtime: lambda.Runtime.PYTHON_3_13, handler: 'index.handler', code });
new lambda.Function(fleet, 'NodeWithOtel', {
  runtime: lambda.Runtime.NODEJS_22_X,
  architecture: lambda.Architecture.ARM_64,
  handler: 'index.handler',
  code,
  environment: { AWS_LAMBDA_EXEC_WRAPPER: '/opt/otel-instrument', KEEP: 'me' },
  layers: [lambda.LayerVersion.fromLayerVersionArn(fleet, 'Otel', 'arn:aws:lambda:eu-west-1:901920570463:layer:aws-otel-nodejs-arm64-ver-1-30-1:1')],
});
new lambda.Function(fleet, 'ShellOnProvided', {
  runtime: lambda.Runtime.PROVIDED_AL2023,
  architecture: lambda.Architecture.ARM_64,
  handler: 'function.handler',
  code: lambda.Code.fromAsset(path.join(__dirname, '..', 'functions', 'shell')),
  environment: { LD_PRELOAD: '/opt/lib/libother.so' },
});
new lambda.Function(fleet, 'OptedOut', {
  runtime: lambda.Runtime.PYTHON_3_13,
  handler: 'index.handler',
  code,
  environment: { LAMBDA_METER_DISABLE: 'true' },
});
new lambda.DockerImageFunction(fleet, 'Image', {
  code: lambda.DockerImageCode.fromEcr(ecr.Repository.fromRepositoryName(fleet, 'Repo', 'orders')),
});
Aspects.of(fleet).add(new LambdaMeter({ layers }));

// Another stack uses layers published elsewhere (layer/publish, shared in the Organization).
const team = new Stack(app, 'Team');
new lambda.Function(team, 'Java', {
  runtime: lambda.Runtime.JAVA_21,
  handler: 'Handler::handleRequest',
  code: lambda.Code.fromAsset(path.join(__dirname, '..', 'functions', 'java')),
});
const published = new LambdaMeter({
  layers: {
    x86_64: 'arn:aws:lambda:eu-west-1:123456789012:layer:lambda-meter-x86_64:3',
    arm64: 'arn:aws:lambda:eu-west-1:123456789012:layer:lambda-meter-arm64:3',
  },
});
// Added twice: each function is still metered once.
Aspects.of(team).add(published);
Aspects.of(team).add(new LambdaMeter({ layers: published.layers }));

const assembly = app.synth();
const out = { templates: {}, warnings: [] };
for (const stack of assembly.stacks) {
  out.templates[stack.stackName] = stack.templateFullPath;
  for (const m of stack.messages) {
    if (m.level === 'warning') out.warnings.push({ path: m.id, text: String(m.entry.data) });
  }
}
console.log(JSON.stringify(out));
