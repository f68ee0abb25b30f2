"""Isaac Gym / Isaac Lab policies in robolearn: importers that write policy artifacts (contract 3).

robolearn.isaac.artifact holds what every importer shares (ImportedPolicy, write_imported_artifact);
robolearn.isaac.legged_gym reads unitree_rl_gym / legged_gym TorchScript exports, and
robolearn.isaac.isaaclab Isaac Lab rsl_rl runs. Importers load torch lazily, so importing this
package costs nothing.
"""
