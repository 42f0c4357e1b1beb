// Package deploy holds no code: its tests build and run what is shipped,
// the orchestrator's image (deploy/image, the root Dockerfile) and the
// single-container bundle beside Cronium's backend (deploy/bundle).
package deploy
