// A buffered handler for aws-lambda-ric.
import { act } from "./actions.mjs";

export const handler = async (event, context) => act(event, context);
