import { IAspect } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct, IConstruct } from 'constructs';

/** A layer version ARN, or a layer of the same app, for each architecture. */
export interface LambdaMeterLayerChoice {
  readonly x86_64: string | lambda.ILayerVersion;
  readonly arm64: string | lambda.ILayerVersion;
}

/** Meters every Lambda function in the scope it is added to. */
export declare class LambdaMeter implements IAspect {
  constructor(props: { readonly layers: LambdaMeterLayerChoice });
  visit(node: IConstruct): void;
}

/** The two layer versions, from the zips of `make layer`. */
export declare class LambdaMeterLayers extends Construct implements LambdaMeterLayerChoice {
  constructor(scope: Construct, id: string, props: { readonly zipDir: string });
  readonly x86_64: lambda.LayerVersion;
  readonly arm64: lambda.LayerVersion;
}

/** The compatible runtimes of layer/runtimes. */
export declare function compatibleRuntimes(): lambda.Runtime[];
