// qcc's public library API: everything a build pipeline needs, with types. Other modules are internal.

// errors and element types
export { QccError, isQccError, assertNever, formatLoc, type ErrorCode, type Loc } from './ir/errors.js';
export { DTYPES, dtypeFromOnnx, dtypeToOnnx, rawByteLength, isFloat, isSubByte, type DType } from './ir/dtype.js';

// the IR
export {
  Model,
  Graph,
  Node,
  Value,
  Tensor,
  KNOWN_OPS,
  attr,
  sym,
  tensorType,
  tensorFromTyped,
  elementCount,
  isStaticShape,
  shapeToString,
  int64ToNumber,
  type Attr,
  type AttrType,
  type AnyTypedArray,
  type Dim,
  type Int64,
  type KnownOp,
  type Op,
  type OtherType,
  type Shape,
  type SymDim,
  type TensorData,
  type TensorType,
  type Use,
  type ValueType,
} from './ir/ir.js';
export { Rewriter, freshName, type CreateNodeOptions } from './ir/rewriter.js';
export { GraphBuilder, type OpOptions } from './ir/builder.js';
export { verify, assertValid, type Diagnostic, type Severity } from './ir/verify.js';
export { cloneModel } from './ir/clone.js';
export { countParams } from './ir/params.js';
export { inferShapes } from './ir/shape-inference.js';
export { printModel } from './ir/print.js';
export { parseModel } from './ir/parse.js';
export * as numerics from './ir/numerics.js';

// ONNX files
export { loadModel, decodeModel, type ReadOptions } from './ir/onnx/reader.js';
export { saveModel, encodeModel, type WriteOptions, type ExternalDataOptions } from './ir/onnx/writer.js';

// onnxruntime-node as the reference executor
export { createSession, run as runSession, toOrt, fromOrt, type SessionOptions } from './ir/ort.js';

// passes
export { definePass, passOption, type Pass, type PassContext, type PassOption, type PassOptions, type PassResult, type Instrument } from './passes/pass.js';
export { PassManager, verifyInstrument, timingInstrument, dumpInstrument, type RunOptions, type PipelineResult } from './passes/manager.js';
export { defineRule, applyRules, commute, explainRule, isFail, type Rule, type RuleSet, type Fail, type MatchCtx } from './passes/rules.js';
export { allPasses, getPass } from './passes/registry.js';
export { canonicalize } from './passes/canonicalize.js';

// reference models
export { ZOO, buildZooModel, writeZooModel, type ZooEntry, type BuildZooOptions, type WriteZooOptions } from './models/index.js';

// quantization: `qcc compile` as a library call
export { compile, type CompileOptions, type CompileResult, type CompileProgress } from './targets/compile.js';
export { presetConfig, loadConfigFile, PRESETS } from './targets/config.js';
export type { CompileReport, LayerReport, OrtCheck } from './targets/report.js';
export type { OutputMetrics } from './targets/validate.js';
export type { QuantConfig, Preset, LayerOverride, Calibrator, QuantPlan, Fallback } from './passes/quant/types.js';

// the command line, callable in-process
export { runCli } from './cli/app.js';
