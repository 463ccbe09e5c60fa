export { AnswerTail, readAnswer, readTimings, type AnswerFacts, type Timings } from './answer.js';
export { recordedRoute, type RecordedRoute, type RequestFamily } from './family.js';
export { RequestLog, type RequestListener, type RequestQuery } from './log.js';
export { buildRecord, loadWait, placementLine, safeHeaders, type CapturedBodies, type RequestDraft, type RequestOutcome, type RequestRecord, type ResponseEnd, type UpstreamNote } from './record.js';
