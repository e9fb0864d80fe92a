export { BrokerCore, type BrokerCoreOptions } from './broker-core.js';
export { AccessControl, type AccessControlOptions, type AuthenticationResult, type Permission, type VhostDeletedListener } from './access/access-control.js';
export { DefinitionsRegistry, SectionOrder, type DefinitionsSection, type ImportReport } from './access/definitions.js';
export type { PermissionKind } from './access/permission-patterns.js';
export { type Assignment, type AssignmentStrategy, assignmentStrategies, assign, rangeAssign, roundRobinAssign, stickyAssign } from './assignors.js';
export type {
  CommitOffsetsRequest,
  GroupDescription,
  GroupLag,
  GroupMode,
  GroupSummary,
  HeartbeatRequest,
  LeaveGroupRequest,
  PartitionOffset,
  SyncGroupRequest,
} from './consumer-groups.js';
export type { FetchRequest, FetchResult } from './fetch.js';
export type { GroupMemberDescription, GroupState, JoinGroupRequest, JoinGroupResult, TopicAssignment } from './group-coordinator.js';
export type { FoundMessage, GetMessageRequest } from './message-lookup.js';
export type { Acks, ProduceRequest, ProduceResult, SharedProduceOutcome, SharedProduceRequest } from './partition-writer.js';
export type { ProducerIdentity } from './producer-ids.js';
export { PRODUCER_WINDOW } from './producer-state.js';
export { ManualScheduler, type Scheduler, systemScheduler, type TimerHandle } from './scheduler.js';
export { defaultTopicConfig, MAX_PARTITIONS, partitionQueueName, type PartitionState, type TopicConfig, type TopicDescription } from './topic-registry.js';
