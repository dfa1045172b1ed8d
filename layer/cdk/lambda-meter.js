// lambda-meter for AWS CDK v2: an Aspect that meters every Lambda function in a scope, and a
// construct that publishes the two layers from the zips of `make layer`.
//
//   const { LambdaMeter, LambdaMeterLayers } = require('./lambda-meter');
//   const layers = new LambdaMeterLayers(stack, 'LambdaMeter', { zipDir: 'path/to/target/layer' });
//   Aspects.of(app).add(new LambdaMeter({ layers }));             // every function of the app
//   // or, with layers published elsewhere (layer/publish, another account of the Organization):
//   Aspects.of(stack).add(new LambdaMeter({ layers: { x86_64: 'arn:...:1', arm64: 'arn:...:1' } }));
//
// Each function (lambda.Function and everything built on it: NodejsFunction, PythonFunction…)
// gets the layer of its architecture and the variable its runtime needs:
// AWS_LAMBDA_EXEC_WRAPPER=/opt/lambda-meter on managed runtimes, LD_PRELOAD on the OS-only
// runtimes (provided.*), where Lambda runs no wrapper. A wrapper the function already has moves
// to LAMBDA_METER_NEXT_WRAPPER and still runs; an LD_PRELOAD it has is kept after ours.
// Container image functions cannot take layers: they get a warning annotation instead.
'use strict';
const fs = require('fs');
const path = require('path');
const { Annotations, RemovalPolicy } = require('aws-cdk-lib');
const lambda = require('aws-cdk-lib/aws-lambda');
const { Construct } = require('constructs');

const WRAPPER = '/opt/lambda-meter';
const LIBRARY = '/opt/lib/liblambda_meter.so';
// The same library built for glibc 2.34 and later: provided.al2023's (two files fewer for the
// loader in every process; the wrapper makes the same choice on managed runtimes).
const LIBRARY_GLIBC_2_34 = '/opt/lib/glibc-2.34/liblambda_meter.so';
const ARCHITECTURES = ['x86_64', 'arm64'];

// The compatible runtimes, written here from layer/runtimes by layer/sync (this file is meant to
// be copied into a CDK app, away from that list).
const RUNTIMES = ['nodejs22.x', 'nodejs24.x', 'python3.11', 'python3.12', 'python3.13', 'python3.14', 'java17', 'java21', 'java25', 'ruby3.3', 'ruby3.4', 'ruby4.0', 'dotnet10', 'provided.al2023'];

/** The compatible runtimes of the layers (layer/runtimes). */
function compatibleRuntimes() {
  return RUNTIMES.map((name) => new lambda.Runtime(name));
}

/** The two layer versions, from lambda-meter-<version>-<arch>.zip in `zipDir`. */
class LambdaMeterLayers extends Construct {
  constructor(scope, id, props) {
    super(scope, id);
    const dir = props && props.zipDir;
    if (!dir) throw new Error('LambdaMeterLayers: zipDir (target/layer of make layer) is required');
    const zips = fs.readdirSync(dir);
    for (const arch of ARCHITECTURES) {
      const zip = zips.find((z) => z.startsWith('lambda-meter-') && z.endsWith(`-${arch}.zip`));
      if (!zip) throw new Error(`LambdaMeterLayers: no lambda-meter-*-${arch}.zip in ${dir}: run make layer`);
      this[arch] = new lambda.LayerVersion(this, arch, {
        layerVersionName: `lambda-meter-${arch}`,
        code: lambda.Code.fromAsset(path.join(dir, zip)),
        compatibleArchitectures: [arch === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64],
        compatibleRuntimes: compatibleRuntimes(),
        description: `${zip.replace(/\.zip$/, '')}: AWS_LAMBDA_EXEC_WRAPPER=${WRAPPER} (provided.*: LD_PRELOAD=${LIBRARY})`,
        license: 'Apache-2.0',
        // A new version keeps the old ones: functions may still use them.
        removalPolicy: RemovalPolicy.RETAIN,
      });
    }
  }
}

/** The Aspect: see the top of this file. */
class LambdaMeter {
  constructor(props) {
    const layers = props && props.layers;
    if (!layers || !ARCHITECTURES.every((a) => layers[a])) {
      throw new Error('LambdaMeter: layers must name a layer for x86_64 and for arm64');
    }
    this.layers = layers;
  }

  visit(node) {
    if (!(node instanceof lambda.Function)) return;
    // Once per function, however many scopes the aspect was added to.
    if (node.node.tryFindChild('LambdaMeterLayer')) return;
    if (node.runtime === lambda.Runtime.FROM_IMAGE || node.runtime.name === 'FROM_IMAGE') {
      Annotations.of(node).addWarningV2(
        'lambda-meter:image',
        'lambda-meter: a container image cannot take a layer; copy the wrapper and library into the image (README, Deploy)',
      );
      return;
    }
    const arch = node.architecture.name === 'arm64' ? 'arm64' : 'x86_64';
    const env = environmentOf(node);
    if (env.has('LAMBDA_METER_DISABLE') && /^(1|true|yes|on)$/i.test(env.get('LAMBDA_METER_DISABLE'))) return;
    // By ARN, also for a layer of this app: CDK would refuse a runtime missing from its
    // compatible list (a deprecated one), which the layer meters all the same.
    const layer = this.layers[arch];
    const arn = typeof layer === 'string' ? layer : layer.layerVersionArn;
    node.addLayers(lambda.LayerVersion.fromLayerVersionArn(node, 'LambdaMeterLayer', arn));
    if (node.runtime.name.startsWith('provided')) {
      const library = node.runtime.name === 'provided.al2023' ? LIBRARY_GLIBC_2_34 : LIBRARY;
      const own = env.get('LD_PRELOAD');
      const listed = own ? own.split(/[: ]/) : [];
      if (!listed.includes(LIBRARY) && !listed.includes(LIBRARY_GLIBC_2_34)) {
        node.addEnvironment('LD_PRELOAD', own ? `${library}:${own}` : library);
      }
      return;
    }
    const wrapper = env.get('AWS_LAMBDA_EXEC_WRAPPER');
    if (wrapper === WRAPPER) return;
    if (wrapper) node.addEnvironment('LAMBDA_METER_NEXT_WRAPPER', wrapper);
    node.addEnvironment('AWS_LAMBDA_EXEC_WRAPPER', WRAPPER);
  }
}

/** The variables a function was given so far. CDK keeps them in a private field (a map of
 * {value} entries in aws-cdk-lib 2.2xx, a plain object before): read whichever it is. */
function environmentOf(fn) {
  const out = new Map();
  const env = fn.environment;
  const entries = !env ? [] : typeof env.entries === 'function' ? [...env.entries()] : Object.entries(env);
  for (const [k, v] of entries) out.set(k, v && typeof v === 'object' ? v.value : v);
  return out;
}

module.exports = { LambdaMeter, LambdaMeterLayers, compatibleRuntimes };
