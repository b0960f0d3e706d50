export {
  Producer,
  createProducer,
  type EnqueueOptions,
  type EnqueueResult,
  type JobRequest,
  type ProducerOptions,
} from './producer.js';
export {
  JobTransport,
  RedisUnavailableError,
  ADD_TIMEOUT_MS_DEFAULT,
  bullJobOptions,
  KEEP_COMPLETED_DEFAULT,
  KEEP_FAILED_DEFAULT,
  type TransportJob,
  type TransportOptions,
} from './transport.js';
