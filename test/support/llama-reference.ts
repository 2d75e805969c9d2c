// The float64 Llama/Mixtral reference lives in the library (the strategy runner checks logits against it).
export * from '../../src/models/llama-reference.js';
